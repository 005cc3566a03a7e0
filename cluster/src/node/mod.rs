//! The sans-I/O Raft node core (placeholder while storage lands).
