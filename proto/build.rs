//! Compiles the `.proto` files under `proto/` with `protox` (pure Rust, no `protoc`) and
//! generates prost messages and tonic clients and servers with `tonic-prost-build`.
//!
//! Clients and servers come from two tonic generators so they can use different codecs:
//! the servers decode with `crate::codec::RequestCodec` (a request that does not decode is
//! `INVALID_ARGUMENT`), the clients with tonic-prost's own codec.

use prost::Message;
use prost_build::{Service, ServiceGenerator};
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
    "ninety/v1/watch.proto",
    "ninety/v1/capacity.proto",
];

/// File name in `OUT_DIR` of the encoded descriptor set (see `FILE_DESCRIPTOR_SET`).
const DESCRIPTOR_FILE: &str = "ninety_descriptor_set.bin";

/// The servers' codec (see `src/codec.rs`).
const SERVER_CODEC: &str = "crate::codec::RequestCodec";

/// Runs the client generator and the server generator on every service.
struct ClientsAndServers {
    clients: Box<dyn ServiceGenerator>,
    servers: Box<dyn ServiceGenerator>,
}

impl ServiceGenerator for ClientsAndServers {
    fn generate(&mut self, service: Service, buf: &mut String) {
        self.clients.generate(service.clone(), buf);
        self.servers.generate(service, buf);
    }

    fn finalize(&mut self, buf: &mut String) {
        self.clients.finalize(buf);
        self.servers.finalize(buf);
    }

    fn finalize_package(&mut self, package: &str, buf: &mut String) {
        self.clients.finalize_package(package, buf);
        self.servers.finalize_package(package, buf);
    }
}

fn main() {
    println!("cargo:rerun-if-changed=proto");

    let fds = match protox::compile(PROTOS, ["proto"]) {
        Ok(fds) => fds,
        Err(err) => panic!("failed to compile the .proto files: {err}\n{err:?}"),
    };

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out_dir.join(DESCRIPTOR_FILE), fds.encode_to_vec())
        .expect("write the file descriptor set");

    let generators = ClientsAndServers {
        clients: tonic_prost_build::configure()
            .build_server(false)
            .service_generator(),
        servers: tonic_prost_build::configure()
            .build_client(false)
            .codec_path(SERVER_CODEC)
            .service_generator(),
    };
    let mut config = prost_build::Config::new();
    config.service_generator(Box::new(generators));
    // Both tonic switches off: the services come from `generators` above.
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(false)
        .compile_fds_with_config(fds, config)
        .expect("generate Rust code from the file descriptor set");
}
