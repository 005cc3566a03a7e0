//! A 3-member etcd as the peer: beds as keys, a hold as a compare-and-put transaction,
//! request ids as keys for idempotent retries.
//!
//! Keys: `b/<ward>/<bed>` holds `f` (free), `h/<request>/<patient>` (held) or
//! `o/<request>/<patient>` (occupied); `r/<request>` remembers a write's answer. A hold first
//! tries a bed of the ward the client picks itself (it knows the ward's staffed beds; most
//! are free): one transaction, if the bed is still `f` and the request id is new, put the
//! bed held and the request id, otherwise read the request id (a retry gets its first
//! answer). If that bed was taken, it reads the ward's beds (a serializable range read on
//! the leader: no Raft round; the compare is what makes it safe), picks a free one and tries
//! again, up to `HOLD_ATTEMPTS_MAX` times; each such extra round is counted in `retries`.
//! A ward with no free bed answers from the read. Resolve: one transaction, compare the
//! bed's value is this hold's, put `f` (release) or `o/...` (confirm) and the request id.

use crate::workload::{Hold, HoldOutcome, Session, Ward};
use anyhow::Context;
use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp, TxnOpResponse};
use std::collections::HashMap;
use std::sync::Arc;

/// Reads and transactions one hold may take before it gives up (lost races to other
/// clients holding beds of the same ward).
const HOLD_ATTEMPTS_MAX: u32 = 16;
/// Puts per loading transaction (etcd's default `--max-txn-ops` is 128).
const LOAD_TXN_OPS_MAX: usize = 128;
/// Loading transactions in flight at once.
const LOAD_CONCURRENCY: usize = 16;
const FREE: &[u8] = b"f";

fn bed_key(ward: u32, bed: u32) -> String {
    format!("b/{ward:05}/{bed:03}")
}

fn ward_prefix(ward: u32) -> String {
    format!("b/{ward:05}/")
}

fn request_key(request_id: &str) -> String {
    format!("r/{request_id}")
}

/// The endpoint of the current leader, from each member's status.
pub async fn leader(endpoints: &[String]) -> anyhow::Result<String> {
    for e in endpoints {
        let Ok(mut c) = Client::connect([e], None).await else {
            continue;
        };
        let Ok(st) = c.status().await else { continue };
        if st.header().map(|h| h.member_id()) == Some(st.leader()) {
            return Ok(e.clone());
        }
    }
    anyhow::bail!("no etcd leader among {endpoints:?}")
}

/// Deletes every key and puts one free bed key per staffed bed of `wards`.
pub async fn load(endpoint: &str, wards: &[Ward]) -> anyhow::Result<()> {
    let mut c = Client::connect([endpoint], None)
        .await
        .with_context(|| format!("connecting to etcd at {endpoint}"))?;
    c.delete("", Some(etcd_client::DeleteOptions::new().with_all_keys()))
        .await
        .context("clearing etcd")?;
    let keys: Vec<String> = wards
        .iter()
        .flat_map(|w| (1..=w.staffed_beds).map(move |b| bed_key(w.id, b)))
        .collect();
    let mut set = tokio::task::JoinSet::new();
    for chunk in keys.chunks(LOAD_TXN_OPS_MAX) {
        if set.len() >= LOAD_CONCURRENCY {
            set.join_next().await.context("a load task")???;
        }
        let mut c = c.clone();
        let ops: Vec<TxnOp> = chunk
            .iter()
            .map(|k| TxnOp::put(k.as_str(), FREE, None))
            .collect();
        set.spawn(async move { c.txn(Txn::new().and_then(ops)).await.map(|_| ()) });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(())
}

/// One client's handle (a clone of a shared connection to the leader).
pub struct EtcdSession {
    client: Client,
    /// Staffed beds per ward, for the first, blind try.
    beds: Arc<HashMap<u32, u32>>,
    retries: u64,
    /// Spreads clients' picks over a ward's beds.
    salt: usize,
}

/// What one compare-and-put transaction for a hold did.
enum Try {
    Granted(HoldOutcome),
    /// The bed was not free (another client's, or occupied).
    Lost,
}

impl EtcdSession {
    pub fn new(client: Client, wards: &Arc<HashMap<u32, u32>>, salt: usize) -> EtcdSession {
        EtcdSession {
            client,
            beds: wards.clone(),
            retries: 0,
            salt,
        }
    }

    /// A remembered answer for `rkey`, if the transaction's else branch read one.
    fn remembered(ops: Vec<TxnOpResponse>) -> Option<Vec<u8>> {
        ops.into_iter().find_map(|op| match op {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.value().to_vec()),
            _ => None,
        })
    }

    /// The hold a retried request made the first time (`r/<request>` holds `key\nvalue`).
    fn replayed(remembered: &[u8]) -> HoldOutcome {
        let v = String::from_utf8_lossy(remembered);
        let (key, held) = v.split_once('\n').unwrap_or((&v, ""));
        Self::granted(key, held.as_bytes())
    }

    fn granted(bed_key: &str, value: &[u8]) -> HoldOutcome {
        HoldOutcome::Granted(Hold {
            token: format!("{bed_key}\n{}", String::from_utf8_lossy(value)),
        })
    }

    /// One transaction: if `key` is free and the request id new, hold it.
    async fn try_bed(&mut self, key: &str, rkey: &str, held: &str) -> anyhow::Result<Try> {
        let txn = Txn::new()
            .when([
                Compare::value(key, CompareOp::Equal, FREE),
                Compare::create_revision(rkey, CompareOp::Equal, 0),
            ])
            .and_then([
                TxnOp::put(key, held, None),
                TxnOp::put(rkey, format!("{key}\n{held}"), None),
            ])
            .or_else([TxnOp::get(rkey, None)]);
        let r = self.client.txn(txn).await?;
        if r.succeeded() {
            return Ok(Try::Granted(Self::granted(key, held.as_bytes())));
        }
        Ok(match Self::remembered(r.op_responses()) {
            Some(v) => Try::Granted(Self::replayed(&v)),
            None => Try::Lost,
        })
    }

    /// The keys of the ward's free beds (a serializable read on the leader).
    async fn free_beds(&mut self, ward: u32) -> anyhow::Result<Vec<String>> {
        let beds = self
            .client
            .get(
                ward_prefix(ward),
                Some(GetOptions::new().with_prefix().with_serializable()),
            )
            .await?;
        Ok(beds
            .kvs()
            .iter()
            .filter(|kv| kv.value() == FREE)
            .filter_map(|kv| kv.key_str().ok().map(str::to_string))
            .collect())
    }
}

impl Session for EtcdSession {
    async fn hold(
        &mut self,
        request_id: String,
        ward: u32,
        patient: String,
        _ttl_ms: u64,
    ) -> anyhow::Result<HoldOutcome> {
        let rkey = request_key(&request_id);
        let held = format!("h/{request_id}/{patient}");
        // First a blind try on a bed the client picks (most beds are free), then reads.
        let staffed = self.beds.get(&ward).copied().unwrap_or(1).max(1);
        self.salt = self.salt.wrapping_add(1);
        let guess = bed_key(ward, 1 + (self.salt % staffed as usize) as u32);
        if let Try::Granted(h) = self.try_bed(&guess, &rkey, &held).await? {
            return Ok(h);
        }
        for attempt in 0..HOLD_ATTEMPTS_MAX {
            self.retries += 1;
            let free = self.free_beds(ward).await?;
            if free.is_empty() {
                // A retry of a hold that took the last bed finds its answer here.
                let r = self
                    .client
                    .get(rkey.as_str(), Some(GetOptions::new().with_serializable()))
                    .await?;
                return Ok(match r.kvs().first() {
                    Some(kv) => Self::replayed(kv.value()),
                    None => HoldOutcome::NoCapacity,
                });
            }
            let key = &free[(self.salt + attempt as usize) % free.len()];
            if let Try::Granted(h) = self.try_bed(key, &rkey, &held).await? {
                return Ok(h);
            }
        }
        anyhow::bail!("lost {HOLD_ATTEMPTS_MAX} races for a bed of ward {ward}")
    }

    async fn resolve(
        &mut self,
        request_id: String,
        hold: Hold,
        confirm: bool,
    ) -> anyhow::Result<bool> {
        let (key, held) = hold
            .token
            .split_once('\n')
            .context("an etcd hold token is `key\\nvalue`")?;
        let next = if confirm {
            format!("o{}", &held[1..])
        } else {
            String::from_utf8_lossy(FREE).to_string()
        };
        let rkey = request_key(&request_id);
        let txn = Txn::new()
            .when([
                Compare::value(key, CompareOp::Equal, held),
                Compare::create_revision(rkey.as_str(), CompareOp::Equal, 0),
            ])
            .and_then([
                TxnOp::put(key, next, None),
                TxnOp::put(rkey.as_str(), "done", None),
            ])
            .or_else([TxnOp::get(rkey.as_str(), None)]);
        let r = self.client.txn(txn).await?;
        Ok(r.succeeded() || Self::remembered(r.op_responses()).is_some())
    }

    fn retries(&self) -> u64 {
        self.retries
    }
}
