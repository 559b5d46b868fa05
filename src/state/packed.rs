//! How a batch's wire body is stored in `batch_body`: as an LZ4 frame
//! (the standard frame format, with its content checksum, which the `lz4`
//! command reads back too). A body is JSON whose field names repeat record
//! after record; packed it takes about a third of the bytes, and every one
//! of them is written twice (to the WAL at the chunk's commit, to the
//! database at the checkpoint), so sealing writes far less to disk than
//! the body's own size twice over. The body sent, exported or replayed is
//! always the unpacked bytes, exactly as sealed.
//!
//! Bodies stored before this (schema v9 and older) are plain JSON: they
//! begin with `{`, never with the frame's magic number, and are read as
//! they are.

use std::io::{Read, Write};

use lz4_flex::frame::{BlockMode, BlockSize, FrameDecoder, FrameEncoder, FrameInfo};

/// The first four bytes of an LZ4 frame (0x184D2204, little-endian).
const MAGIC: [u8; 4] = [0x04, 0x22, 0x4D, 0x18];

/// `body` as stored.
pub fn pack(body: &[u8]) -> Vec<u8> {
    let info = FrameInfo::new()
        .block_size(BlockSize::Max64KB)
        .block_mode(BlockMode::Linked)
        .content_size(Some(body.len() as u64))
        .content_checksum(true);
    let mut enc = FrameEncoder::with_frame_info(info, Vec::with_capacity(body.len() / 3 + 64));
    enc.write_all(body).expect("writing into a Vec cannot fail");
    enc.finish().expect("writing into a Vec cannot fail")
}

/// The wire body of what `pack` stored (or of a plain body from before).
pub fn unpack(stored: Vec<u8>) -> rusqlite::Result<Vec<u8>> {
    if !stored.starts_with(&MAGIC) {
        return Ok(stored);
    }
    // A body packs to about a third: room for that, grown if need be.
    let mut out = Vec::with_capacity(stored.len() * 3);
    FrameDecoder::new(stored.as_slice())
        .read_to_end(&mut out)
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
        })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_body_comes_back_byte_for_byte_and_smaller() {
        let rec = r#"{"op":"upsert","key":"K1","hash":"ab","data":{"applyer_name":"宋佳柔","task_version":7}}"#;
        let body = format!(
            r#"{{"batchId":"B1","records":[{}]}}"#,
            vec![rec; 1000].join(",")
        );
        let stored = pack(body.as_bytes());
        assert!(stored.starts_with(&MAGIC));
        assert!(
            stored.len() * 3 < body.len(),
            "{} of {}",
            stored.len(),
            body.len()
        );
        assert_eq!(unpack(stored).unwrap(), body.as_bytes());
    }

    #[test]
    fn a_plain_body_from_before_is_read_as_it_is() {
        let body = br#"{"batchId":"B1","records":[]}"#.to_vec();
        assert_eq!(unpack(body.clone()).unwrap(), body);
    }

    #[test]
    fn a_damaged_frame_is_an_error_not_other_bytes() {
        let body = br#"{"batchId":"B1","records":[{"op":"upsert"}]}"#.repeat(50);
        let mut stored = pack(&body);
        let mid = stored.len() / 2;
        stored[mid] ^= 0x55;
        assert!(unpack(stored).is_err());
    }

    proptest! {
        #[test]
        fn any_bytes_round_trip(body in proptest::collection::vec(any::<u8>(), 0..200_000)) {
            prop_assert_eq!(unpack(pack(&body)).unwrap(), body);
        }
    }
}
