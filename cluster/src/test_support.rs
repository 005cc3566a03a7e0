//! Test and simulation support (placeholder).
