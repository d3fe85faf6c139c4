//! Output: the JSON summary (stable field names), the human table, the SVG timeline.

pub mod human;
pub mod json;
pub mod svg;

pub use json::Summary;
