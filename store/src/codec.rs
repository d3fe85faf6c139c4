//! On-disk layouts. All fixed and hand-written rather than serde-derived, so that a change to
//! a core type (a field added, reordered or renamed) cannot silently change what is on disk:
//! it breaks the build here instead, where the format version has to be decided.
//!
//! | record | key | value |
//! |---|---|---|
//! | header | height, u64 big endian | [`Header::encode`]: the 80 bytes the block hash is taken over |
//! | body | height, u64 big endian | u32 LE tx count, then per tx: u32 LE length, bytes |
//! | address | tag (0 = v4, 1 = v6), ip octets, port u16 big endian | u32 LE failures, u8 has-last-seen, u64 LE last_seen |
//!
//! Heights are big endian so that LMDB's lexicographic key order is numeric order: the last
//! key is the tip and a rollback is one range delete. Address keys sort exactly like
//! `PeerAddr`'s derived `Ord` (variant, then octets, then port), so [`addrs`] comes back in the
//! same order as `MemStore`'s `BTreeMap`.
//!
//! [`addrs`]: timed_core::Store::addrs

use timed_core::chain::{BlockHash, Header, Tx};
use timed_core::store::AddrEntry;
use timed_core::PeerAddr;

pub(crate) const HEADER_LEN: usize = 80;

pub(crate) fn decode_header(bytes: &[u8]) -> Option<Header> {
    if bytes.len() != HEADER_LEN {
        return None;
    }
    Some(Header {
        height: u64::from_le_bytes(bytes[0..8].try_into().ok()?),
        prev: BlockHash(bytes[8..40].try_into().ok()?),
        time: u64::from_le_bytes(bytes[40..48].try_into().ok()?),
        tx_root: bytes[48..80].try_into().ok()?,
    })
}

pub(crate) fn encode_body(txs: &[Tx]) -> Vec<u8> {
    let len = 4 + txs.iter().map(|t| 4 + t.0.len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    // Counts and lengths fit in u32: the core bounds a block to a few MiB. A value that did
    // not fit would be caught by the decoder's exact-length check, never misread.
    out.extend_from_slice(&(txs.len() as u32).to_le_bytes());
    for tx in txs {
        out.extend_from_slice(&(tx.0.len() as u32).to_le_bytes());
        out.extend_from_slice(&tx.0);
    }
    out
}

pub(crate) fn decode_body(mut bytes: &[u8]) -> Option<Vec<Tx>> {
    let count = take_u32(&mut bytes)? as usize;
    // Never trust a stored count for an allocation: each tx takes at least 4 bytes.
    let mut txs = Vec::with_capacity(count.min(bytes.len() / 4));
    for _ in 0..count {
        let len = take_u32(&mut bytes)? as usize;
        if bytes.len() < len {
            return None;
        }
        let (tx, rest) = bytes.split_at(len);
        txs.push(Tx(tx.to_vec()));
        bytes = rest;
    }
    bytes.is_empty().then_some(txs)
}

fn take_u32(bytes: &mut &[u8]) -> Option<u32> {
    if bytes.len() < 4 {
        return None;
    }
    let (head, rest) = bytes.split_at(4);
    *bytes = rest;
    Some(u32::from_le_bytes(head.try_into().ok()?))
}

/// At most 1 + 16 + 2 bytes.
pub(crate) fn addr_key(addr: &PeerAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(19);
    match addr {
        PeerAddr::V4(ip, port) => {
            out.push(0);
            out.extend_from_slice(ip);
            out.extend_from_slice(&port.to_be_bytes());
        }
        PeerAddr::V6(ip, port) => {
            out.push(1);
            out.extend_from_slice(ip);
            out.extend_from_slice(&port.to_be_bytes());
        }
    }
    out
}

pub(crate) fn decode_addr_key(key: &[u8]) -> Option<PeerAddr> {
    match key {
        [0, rest @ ..] if rest.len() == 6 => Some(PeerAddr::V4(
            rest[..4].try_into().ok()?,
            u16::from_be_bytes(rest[4..].try_into().ok()?),
        )),
        [1, rest @ ..] if rest.len() == 18 => Some(PeerAddr::V6(
            rest[..16].try_into().ok()?,
            u16::from_be_bytes(rest[16..].try_into().ok()?),
        )),
        _ => None,
    }
}

pub(crate) fn encode_addr_value(entry: &AddrEntry) -> [u8; 13] {
    let mut out = [0u8; 13];
    out[0..4].copy_from_slice(&entry.failures.to_le_bytes());
    if let Some(t) = entry.last_seen {
        out[4] = 1;
        out[5..13].copy_from_slice(&t.to_le_bytes());
    }
    out
}

pub(crate) fn decode_addr(key: &[u8], value: &[u8]) -> Option<AddrEntry> {
    let addr = decode_addr_key(key)?;
    if value.len() != 13 {
        return None;
    }
    let failures = u32::from_le_bytes(value[0..4].try_into().ok()?);
    let last_seen = match value[4] {
        0 => None,
        1 => Some(u64::from_le_bytes(value[5..13].try_into().ok()?)),
        _ => return None,
    };
    Some(AddrEntry {
        addr,
        failures,
        last_seen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_through_its_hash_encoding() {
        let h = Header {
            height: 7,
            prev: BlockHash([3; 32]),
            time: 99,
            tx_root: [4; 32],
        };
        assert_eq!(decode_header(&h.encode()), Some(h));
        assert_eq!(decode_header(&[0; 79]), None);
    }

    #[test]
    fn body_round_trips_and_rejects_garbage() {
        let txs = vec![Tx(vec![]), Tx(vec![1, 2, 3]), Tx(vec![9; 300])];
        let enc = encode_body(&txs);
        assert_eq!(decode_body(&enc), Some(txs));
        assert_eq!(decode_body(&encode_body(&[])), Some(vec![]));
        assert_eq!(decode_body(&enc[..enc.len() - 1]), None);
        let mut long = enc.clone();
        long.push(0);
        assert_eq!(decode_body(&long), None);
        assert_eq!(decode_body(&[0xff, 0xff, 0xff, 0xff]), None);
    }

    #[test]
    fn addr_keys_sort_like_peer_addr() {
        let mut addrs = vec![
            PeerAddr::V6([0; 16], 1),
            PeerAddr::V4([10, 0, 0, 1], 300),
            PeerAddr::V4([10, 0, 0, 1], 2),
            PeerAddr::V4([9, 255, 255, 255], 65535),
            PeerAddr::V6([0; 16], 0),
        ];
        let mut by_key = addrs.clone();
        by_key.sort_by_key(addr_key);
        addrs.sort();
        assert_eq!(addrs, by_key);
        for a in addrs {
            assert_eq!(decode_addr_key(&addr_key(&a)), Some(a));
        }
    }

    #[test]
    fn addr_entry_round_trips() {
        for last_seen in [None, Some(0), Some(u64::MAX)] {
            let e = AddrEntry {
                addr: PeerAddr::V4([1, 2, 3, 4], 5),
                failures: 6,
                last_seen,
            };
            assert_eq!(
                decode_addr(&addr_key(&e.addr), &encode_addr_value(&e)),
                Some(e)
            );
        }
    }
}
