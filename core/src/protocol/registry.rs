//! Which protocols and topics this node runs, built once from the config.

use super::{builtin, ProtocolAd, ProtocolId, ProtocolSpec, TopicAd, TopicId, TopicSpec};
use crate::config::Config;
use alloc::vec::Vec;

/// Who answers a protocol's requests.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Served {
    /// The chain layer, synchronously.
    Core,
    /// The application, through `NodeEvent::InboundRequest`.
    App,
}

#[derive(Debug)]
pub(crate) struct Registry {
    /// Sorted by id.
    protocols: Vec<(ProtocolSpec, Served)>,
    /// Sorted by id.
    topics: Vec<(TopicSpec, Served)>,
    protocol_ads: Vec<ProtocolAd>,
    topic_ads: Vec<TopicAd>,
}

impl Registry {
    /// The built-ins plus the application's declarations (validated by `Config::validate`).
    pub fn new(cfg: &Config) -> Self {
        let mut protocols: Vec<(ProtocolSpec, Served)> = builtin::protocols(cfg)
            .into_iter()
            .map(|s| (s, Served::Core))
            .chain(cfg.protocols.iter().map(|s| (*s, Served::App)))
            .collect();
        protocols.sort_by_key(|(s, _)| s.id);
        let mut topics: Vec<(TopicSpec, Served)> = builtin::topics(cfg)
            .into_iter()
            .map(|s| (s, Served::Core))
            .chain(cfg.topics.iter().map(|s| (*s, Served::App)))
            .collect();
        topics.sort_by_key(|(s, _)| s.id);
        Registry {
            protocol_ads: protocols.iter().map(|(s, _)| s.advert()).collect(),
            topic_ads: topics.iter().map(|(s, _)| s.advert()).collect(),
            protocols,
            topics,
        }
    }

    pub fn protocol(&self, id: ProtocolId) -> Option<(&ProtocolSpec, Served)> {
        let i = self
            .protocols
            .binary_search_by_key(&id, |(s, _)| s.id)
            .ok()?;
        let (s, served) = &self.protocols[i];
        Some((s, *served))
    }

    pub fn topic(&self, id: TopicId) -> Option<(&TopicSpec, Served)> {
        let i = self.topics.binary_search_by_key(&id, |(s, _)| s.id).ok()?;
        let (s, served) = &self.topics[i];
        Some((s, *served))
    }

    pub fn protocols(&self) -> impl Iterator<Item = &ProtocolSpec> {
        self.protocols.iter().map(|(s, _)| s)
    }

    pub fn topics(&self) -> impl Iterator<Item = &TopicSpec> {
        self.topics.iter().map(|(s, _)| s)
    }

    pub fn protocol_ads(&self) -> &[ProtocolAd] {
        &self.protocol_ads
    }

    pub fn topic_ads(&self) -> &[TopicAd] {
        &self.topic_ads
    }
}
