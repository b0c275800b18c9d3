//! Detection and framing tests.
