//! Selection over real generations: hash tables kept by a reload that
//! keeps the cluster, balancer state carried, ramps started where they
//! should be.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::config::Config;
use crate::shard::generation::Generation;
use crate::shard::identity::Identities;

fn config(endpoints: &str, extra: &str) -> Arc<Config> {
    let text = format!(
        "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n[[routes]]\ncluster = \"c\"\n\
         [[clusters]]\nname = \"c\"\nendpoints = [{endpoints}]\n{extra}"
    );
    Arc::new(Config::parse(&text, "t.toml").unwrap())
}

fn table_ptr(g: &Generation) -> *const () {
    match &g.hash_tables[0].as_ref().unwrap().1 {
        HashTable::Ring(r) => Arc::as_ptr(r) as *const (),
        HashTable::Maglev(m) => Arc::as_ptr(m) as *const (),
    }
}

#[test]
fn a_reload_keeps_the_hash_table_unless_endpoints_or_weights_change() {
    for lb in ["ring_hash", "maglev"] {
        let extra = format!("lb = \"{lb}\"\nhash_key = \"path\"\n");
        let two = "\"127.0.0.1:1\", \"127.0.0.1:2\"";
        let mut ids = Identities::default();
        let (g1, _) = Generation::build(1, config(two, &extra), &mut ids, None).unwrap();
        let (g2, _) = Generation::build(2, config(two, &extra), &mut ids, Some(&g1)).unwrap();
        assert_eq!(table_ptr(&g1), table_ptr(&g2), "{lb}: same endpoints, table rebuilt");
        let three = "\"127.0.0.1:1\", \"127.0.0.1:2\", \"127.0.0.1:3\"";
        let (g3, _) = Generation::build(3, config(three, &extra), &mut ids, Some(&g2)).unwrap();
        assert_ne!(table_ptr(&g2), table_ptr(&g3), "{lb}: an endpoint added, table kept");
        let weighted = "\"127.0.0.1:1\", { address = \"127.0.0.1:2\", weight = 2 }, \"127.0.0.1:3\"";
        let (g4, _) = Generation::build(4, config(weighted, &extra), &mut ids, Some(&g3)).unwrap();
        assert_ne!(table_ptr(&g3), table_ptr(&g4), "{lb}: a weight changed, table kept");
    }
}

#[test]
fn a_reload_carries_round_robin_state_and_ramps_only_new_endpoints() {
    let extra = "slow_start = \"10s\"\n";
    let mut ids = Identities::default();
    let (g1, _) = Generation::build(1, config("\"127.0.0.1:1\", \"127.0.0.1:2\"", extra), &mut ids, None).unwrap();
    let g1 = Arc::new(g1);
    let states = EndpointStates::default();
    let t0 = Instant::now();
    states.ramps.on_install(&g1, None, t0);
    assert!(!states.ramps.any(), "endpoints of the first generation do not ramp");

    let s1 = ShardGeneration::new(0, g1.clone(), None);
    let tried = Tried::default();
    let picks: Vec<usize> = (0..2).map(|_| select(&s1, &states, 0, &tried, None).unwrap().index).collect();
    assert_eq!(picks, [0, 1]);

    let (g2, _) =
        Generation::build(2, config("\"127.0.0.1:1\", \"127.0.0.1:2\", \"127.0.0.1:3\"", extra), &mut ids, Some(&g1))
            .unwrap();
    let g2 = Arc::new(g2);
    states.ramps.on_install(&g2, Some(&g1), t0);
    let s2 = ShardGeneration::new(0, g2.clone(), Some(&s1));
    // Round robin goes on where it was, not from the start (seen on a
    // table without the ramp, which would switch to the weighted path).
    assert_eq!(select(&s2, &EndpointStates::default(), 0, &tried, None).unwrap().index, 2);
    // Only the new endpoint ramps.
    let new = g2.endpoints[0][2].slot();
    let kept = g2.endpoints[0][0].slot();
    let soon = t0 + Duration::from_secs(1);
    assert!(states.ramps.weight(new, 1, soon) < WEIGHT_SCALE / 4);
    assert_eq!(states.ramps.weight(kept, 1, soon), WEIGHT_SCALE);
}

#[test]
fn an_endpoint_back_from_a_passive_mark_ramps() {
    let extra = "slow_start = \"10s\"\n";
    let mut ids = Identities::default();
    let (g, _) = Generation::build(1, config("\"127.0.0.1:1\", \"127.0.0.1:2\"", extra), &mut ids, None).unwrap();
    let states = EndpointStates::default();
    states.ramps.on_install(&g, None, Instant::now());
    let id = g.endpoints[0][1];
    states.connect_failed(id);
    assert!(!states.usable(id));
    states.clear(id);
    assert!(states.ramps.any(), "the mark lifted, no ramp");
    assert!(states.ramps.weight(id.slot(), 1, Instant::now()) < WEIGHT_SCALE / 4);
}

#[test]
fn in_flight_counts_steer_least_request_through_select() {
    let mut ids = Identities::default();
    let (g, _) =
        Generation::build(1, config("\"127.0.0.1:1\", \"127.0.0.1:2\"", "lb = \"least_request\"\n"), &mut ids, None)
            .unwrap();
    let g = Arc::new(g);
    let s = ShardGeneration::new(0, g.clone(), None);
    let states = EndpointStates::default();
    let busy: Vec<_> = (0..3).map(|_| states.in_flight.start(g.endpoints[0][0].slot())).collect();
    let tried = Tried::default();
    let to_busy = (0..1000).filter(|_| select(&s, &states, 0, &tried, None).unwrap().index == 0).count();
    // The two draws are different endpoints: the idle one wins every pick.
    assert_eq!(to_busy, 0, "{to_busy} of 1000 to the busy endpoint");
    drop(busy);
    assert_eq!(states.in_flight.get(g.endpoints[0][0].slot()), 0);
}
