//! The bytes of an outgoing frame, owned or shared.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::Deref;

/// An encoded frame the driver writes ([`Action::Send`](crate::Action::Send)). Most frames
/// are the machine's own buffer (`Owned`, which the driver may hand back with
/// [`PeerMachine::recycle`](crate::PeerMachine::recycle)); a gossip message sent to many
/// peers is encoded once and `Shared` by every connection's queue, so N peers cost one copy
/// of a block, not N.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Payload {
    /// The machine's own buffer, now the driver's; `recycle` may hand it back for reuse.
    Owned(Vec<u8>),
    /// One encoding shared by every connection the frame goes to.
    Shared(Arc<[u8]>),
}

impl Payload {
    /// The bytes as a `Vec`: the buffer itself when owned, a copy when shared.
    pub fn into_vec(self) -> Vec<u8> {
        match self {
            Payload::Owned(v) => v,
            Payload::Shared(s) => s.to_vec(),
        }
    }
}

impl Deref for Payload {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Payload::Owned(v) => v,
            Payload::Shared(s) => s,
        }
    }
}

impl AsRef<[u8]> for Payload {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Self {
        Payload::Owned(v)
    }
}

impl PartialEq<[u8]> for Payload {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}
