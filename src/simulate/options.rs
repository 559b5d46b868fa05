//! The command-line options of `fepd simulate-library`: who may log in, which
//! routes exist, and which faults to inject.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use clap::Parser;

/// Options for the simulated resource library. Every default is the value an
/// operator rehearsing the 联调 would want without thinking about it.
#[derive(clap::Args, Debug, Clone)]
pub struct SimOptions {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8730")]
    pub listen: SocketAddr,

    /// SQLite file that keeps what the library received (WAL mode). Without
    /// it, everything is kept in memory and lost at exit.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// The client id accepted by `POST /api/v1/token`.
    #[arg(long, value_name = "ID", default_value = "fep-001")]
    pub client_id: String,

    /// The client secret accepted by `POST /api/v1/token`.
    #[arg(long, value_name = "SECRET", default_value = "secret")]
    pub client_secret: Secret,

    /// The appId accepted by `POST /apigateway/getAccessToken` (variant
    /// `app_key_hmac`).
    #[arg(long, value_name = "ID", default_value = "app-001")]
    pub app_id: String,

    /// The appKey that signs `keyInfo` in the `app_key_hmac` variant.
    #[arg(long, value_name = "KEY", default_value = "appkey")]
    pub app_key: Secret,

    /// The sysCode the `app_key_hmac` variant must present; any non-empty
    /// sysCode is accepted when unset.
    #[arg(long, value_name = "CODE")]
    pub sys_code: Option<String>,

    /// The sender code the credentials are registered for (the app key's
    /// too, unless `--app-sender`): a batch whose `sender` differs from its
    /// token's is refused 403 403001 (docs/protocol.md §2, §6).
    #[arg(long, value_name = "CODE", default_value = "230000-zwfw")]
    pub sender: String,

    /// The sender code the `app_key_hmac` credential is registered for, when
    /// it is another than `--sender` (a second platform on one library).
    #[arg(long, value_name = "CODE")]
    pub app_sender: Option<String>,

    /// Serves the inspection endpoints (`/sim/stats`, `/sim/records`,
    /// `/sim/batches`, `/sim/audit-heads`) to requests carrying
    /// `Authorization: Bearer TOKEN`; without it they are off. The records
    /// are personal data.
    #[arg(long, value_name = "TOKEN")]
    pub inspect_token: Option<Secret>,

    /// Lifetime of an issued token, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 7200)]
    pub token_ttl: u64,

    /// A token stops working after this many push requests (401 401001), to
    /// rehearse renewal before `expires_in` runs out.
    #[arg(long, value_name = "N")]
    pub token_max_uses: Option<u64>,

    /// How long a client id stays locked out after 5 bad secrets within 10
    /// minutes, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub lockout_secs: u64,

    /// Fraction (0..=1) of push requests answered 503 before anything is
    /// looked at.
    #[arg(long, value_name = "F", default_value_t = 0.0, value_parser = parse_fraction)]
    pub fail_rate: f64,

    /// The `Retry-After` value, in seconds, sent with injected 503s.
    #[arg(long, value_name = "SECS", default_value_t = 1)]
    pub retry_after: u64,

    /// Delay added to every push request, in milliseconds: a simulated
    /// round trip. Each request waits on its own; others are served
    /// meanwhile.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub latency_ms: u64,

    /// Fraction (0..=1) of push requests whose batch is stored (or found to
    /// be a duplicate) but whose connection is then closed without an answer.
    #[arg(long, value_name = "F", default_value_t = 0.0, value_parser = parse_fraction)]
    pub drop_rate: f64,

    /// Batches with more records than this are refused with 413 413001.
    #[arg(long, value_name = "N")]
    pub max_records: Option<usize>,

    /// Request bodies larger than this (after gzip decoding) are refused with
    /// 413 413001.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Records whose key contains this text are refused one by one, in
    /// `data.rejected[]` with code 422001.
    #[arg(long, value_name = "SUBSTR")]
    pub reject_keys_matching: Option<String>,

    /// Known routes, as `category/resource` (the dataset is the resource
    /// name) or `category/resource=dataset`, comma-separated; any other
    /// route, or a batch of another dataset on a route, is answered 400
    /// 400003.
    #[arg(
        long,
        value_name = "ROUTES",
        value_delimiter = ',',
        default_values_t = Route::defaults()
    )]
    pub routes: Vec<Route>,

    /// Seed for the fault dice, so a run with faults can be repeated.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

impl Default for SimOptions {
    /// The defaults of the command line, taken from clap itself so that the
    /// two can never disagree.
    fn default() -> Self {
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            options: SimOptions,
        }
        Wrapper::parse_from(["simulate-library"]).options
    }
}

/// A secret given on the command line. Its `Debug` form is redacted so that
/// printing the options never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself; callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// A push route: the `{category}/{resource}` pair of docs/protocol.md §3, and
/// the one dataset it carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    pub category: String,
    pub resource: String,
    pub dataset: String,
}

impl Route {
    /// A route whose dataset is named as its resource.
    pub fn new(category: impl Into<String>, resource: impl Into<String>) -> Self {
        let resource = resource.into();
        Route {
            category: category.into(),
            dataset: resource.clone(),
            resource,
        }
    }

    /// The `category/resource` path part, which names the route on the wire.
    pub fn path(&self) -> String {
        format!("{}/{}", self.category, self.resource)
    }

    /// The routes of the datasets in docs/datasets.md.
    pub fn defaults() -> Vec<Route> {
        [
            ("zwfw", "item_catalog"),
            ("zwfw", "item_task"),
            ("zwfw", "case_accept"),
            ("zwfw", "case_process"),
            ("zwfw", "case_result"),
            ("zwfw", "evaluation"),
            ("culture", "service_stats"),
            ("cgdsj", "event_report"),
        ]
        .into_iter()
        .map(|(c, r)| Route::new(c, r))
        .collect()
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.category, self.resource)?;
        if self.dataset != self.resource {
            write!(f, "={}", self.dataset)?;
        }
        Ok(())
    }
}

impl FromStr for Route {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (path, dataset) = match s.split_once('=') {
            Some((p, d)) if !d.is_empty() => (p, Some(d)),
            Some(_) => return Err(format!("route {s:?} names no dataset after '='")),
            None => (s, None),
        };
        match path.split_once('/') {
            Some((c, r)) if !c.is_empty() && !r.is_empty() && !r.contains('/') => {
                let mut route = Route::new(c, r);
                if let Some(d) = dataset {
                    route.dataset = d.to_string();
                }
                Ok(route)
            }
            _ => Err(format!(
                "route {s:?} is not of the form category/resource[=dataset]"
            )),
        }
    }
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    let f: f64 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if (0.0..=1.0).contains(&f) {
        Ok(f)
    } else {
        Err(format!("{s} is not a fraction between 0 and 1"))
    }
}
