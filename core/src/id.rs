//! Identifiers: who a peer is ([`NodeId`]), which socket bytes belong to ([`ConnId`]), which
//! application query a result answers ([`QueryId`]).

use core::fmt;

/// A node's identity: 32 bytes generated once and persisted in the node's data directory.
///
/// Peers are keyed by this, never by address: three nodes behind one IP are three peers,
/// and one node reached over two sockets is one peer.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct NodeId(pub [u8; 32]);

impl NodeId {
    /// Lowercase hex of all 32 bytes.
    pub fn to_hex(&self) -> alloc::string::String {
        use core::fmt::Write;
        let mut s = alloc::string::String::with_capacity(64);
        for b in self.0 {
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<NodeId> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(NodeId(out))
    }

    /// The first 8 hex digits, for logs and tables.
    pub fn short(&self) -> ShortId {
        ShortId(*self)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.short())
    }
}

/// Display adapter printing the first 4 bytes of a [`NodeId`] in hex.
#[derive(Debug)]
pub struct ShortId(NodeId);

impl fmt::Display for ShortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 .0[..4] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A connection, as numbered by the machine. Assigned on `accept` or `dial`, never reused;
/// only the machine makes them, so an id in hand is one the machine gave out.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, serde::Serialize)]
pub struct ConnId(u64);

impl ConnId {
    pub(crate) const fn new(n: u64) -> Self {
        ConnId(n)
    }

    /// The number, for logs and APIs.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// An id from its number: for a simulator that carries ids through its own tables.
    #[cfg(feature = "sim")]
    pub const fn from_raw(n: u64) -> Self {
        ConnId(n)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// An application query, as numbered by the machine. Each one ends exactly once with a
/// [`NodeEvent::QueryDone`](crate::NodeEvent::QueryDone).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, serde::Serialize)]
pub struct QueryId(u64);

impl QueryId {
    pub(crate) const fn new(n: u64) -> Self {
        QueryId(n)
    }

    /// The number, for logs and APIs.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for QueryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "q{}", self.0)
    }
}
