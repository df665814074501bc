//! Tests of the family rule; the brute-force comparison is in tests/it/hierarchy.rs.
