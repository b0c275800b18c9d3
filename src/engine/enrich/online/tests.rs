//! Online client tests.
