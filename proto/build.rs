//! Compiles the `.proto` files under `proto/` with `protox` (pure Rust, no `protoc`) and
//! generates prost messages and tonic clients and servers with `tonic-prost-build`.

use prost::Message;
use std::{env, fs, path::PathBuf};

/// Every `.proto` file of the crate, relative to the include root `proto/`.
const PROTOS: &[&str] = &[
    "ninety/peer/v1/peer.proto",
    "ninety/v1/common.proto",
    "ninety/v1/beds.proto",
    "ninety/v1/scheduling.proto",
    "ninety/v1/matching.proto",
    "ninety/v1/referrals.proto",
    "ninety/v1/admin.proto",
];

/// File name in `OUT_DIR` of the encoded descriptor set (see `FILE_DESCRIPTOR_SET`).
const DESCRIPTOR_FILE: &str = "ninety_descriptor_set.bin";

fn main() {
    println!("cargo:rerun-if-changed=proto");

    let fds = match protox::compile(PROTOS, ["proto"]) {
        Ok(fds) => fds,
        Err(err) => panic!("failed to compile the .proto files: {err}\n{err:?}"),
    };

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out_dir.join(DESCRIPTOR_FILE), fds.encode_to_vec())
        .expect("write the file descriptor set");

    tonic_prost_build::configure()
        .compile_fds(fds)
        .expect("generate Rust code from the file descriptor set");
}
