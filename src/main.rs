//! The `fepd` binary: all logic lives in the library; see `cli`.

fn main() -> std::process::ExitCode {
    fepd::cli::main()
}
