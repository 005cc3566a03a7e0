//! `ninety cluster cert` and `ninety cluster token`: credentials for an existing cluster.
