//! The exact-floats case: every finite `f64` and `f32` of a payload comes back bit for
//! bit, whatever the codec, the store and the append path.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::support::{named, read};
use crate::model::{Codec, Metadata, NewEvent, Payload, Position, Query, Tag};
use crate::store::{AppendRequest, EventStore, ReadOptions, Snapshot};

/// How many `f64` values each codec carries.
const SAMPLES: usize = 2_000;
const EVENT_TYPE: &str = "conformance.Measured";

/// One measured value per event, so that a store deciding per payload how to keep it
/// (PostgreSQL's `jsonb` or bytes) decides for each value alone.
#[derive(Debug, Serialize, Deserialize)]
struct Sample {
    value: f64,
    single: f32,
}

/// 2,000 finite `f64` values (with as many `f32`): the edges (±0, subnormals, the
/// smallest normal, the largest finite, values around 2^53 and 1e16 where the shortest
/// form switches to an exponent), then random bit patterns, random subnormals, random
/// 17-significant-digit decimals over the whole exponent range and everyday magnitudes.
fn samples(seed: u64) -> Vec<(f64, f32)> {
    let mut values = vec![
        0.0,
        -0.0,
        f64::MIN_POSITIVE,
        -f64::MIN_POSITIVE,
        f64::MAX,
        f64::MIN,
        f64::EPSILON,
        f64::from_bits(1),
        -f64::from_bits(1),
        f64::from_bits(0x000f_ffff_ffff_ffff),
        1e16,
        1e15,
        1e23,
        1e300,
        -1e-300,
        1e-7,
        0.1,
        0.1 + 0.2,
        1.0 / 3.0,
        9_007_199_254_740_993.0,
        123_456_789_012_345_680.0,
        1.797_693_134_862_315_7e308,
    ];
    let mut singles = vec![
        0.0f32,
        -0.0,
        f32::MIN_POSITIVE,
        f32::MAX,
        f32::MIN,
        f32::EPSILON,
        f32::from_bits(1),
        f32::from_bits(0x007f_ffff),
        0.1,
        1e-7,
        16_777_217.0,
    ];
    let mut rng = StdRng::seed_from_u64(seed);
    while values.len() < SAMPLES {
        let candidate = match values.len() % 4 {
            0 => f64::from_bits(rng.random()),
            1 => {
                let sign = if rng.random() { 1u64 << 63 } else { 0 };
                f64::from_bits(sign | (rng.random::<u64>() & 0x000f_ffff_ffff_ffff))
            }
            2 => {
                let digits: u64 = rng.random_range(10_000_000_000_000_000..100_000_000_000_000_000);
                let exponent: i32 = rng.random_range(-340..=292);
                format!("{digits}e{exponent}").parse().unwrap_or(0.0)
            }
            _ => rng.random::<f64>() * 10f64.powi(rng.random_range(-12..=20)),
        };
        if candidate.is_finite() {
            values.push(candidate);
        }
    }
    while singles.len() < SAMPLES {
        let candidate = f32::from_bits(rng.random());
        if candidate.is_finite() {
            singles.push(candidate);
        }
    }
    values.into_iter().zip(singles).collect()
}

/// Every finite float comes back bit for bit: 2,000 `f64` values (`-0.0`, subnormals,
/// `f64::MIN_POSITIVE`, `f64::MAX`/`MIN`, 17-digit decimals, random bit patterns) and
/// as many `f32`, one of each per event, in JSON and in MessagePack payloads, appended
/// alone and in batches, read back and decoded; a JSON payload also reads back as the
/// same JSON value (a float stays a float, not an integer). A snapshot holding all of
/// them, in each codec, loads back exactly too.
pub async fn exact_floats<S: EventStore + Clone + 'static>(store: S) {
    named("exact_floats", async move {
        let samples = samples(0xf10a7);
        let mut written = Vec::new();
        for codec in [Codec::Json, Codec::MessagePack] {
            for (value, single) in &samples {
                let sample = Sample {
                    value: *value,
                    single: *single,
                };
                let payload = codec
                    .encode(EVENT_TYPE, &sample)
                    .unwrap_or_else(|e| panic!("a finite sample {sample:?} did not encode: {e}"));
                written.push(NewEvent {
                    event_type: EVENT_TYPE.to_owned(),
                    version: 1,
                    tags: vec![Tag::new("codec", codec.name())],
                    payload,
                    metadata: Metadata::new(),
                    recorded_at: None,
                });
            }
        }
        // Half through `append`, half through `append_batch`: stores may keep payloads
        // differently on each path.
        for (index, chunk) in written.chunks(250).enumerate() {
            if index % 2 == 0 {
                store
                    .append(chunk.to_vec(), None)
                    .await
                    .unwrap_or_else(|e| panic!("appending float samples failed: {e}"));
            } else {
                let results = store
                    .append_batch(vec![
                        AppendRequest::new(chunk[..125].to_vec(), None),
                        AppendRequest::new(chunk[125..].to_vec(), None),
                    ])
                    .await
                    .unwrap_or_else(|e| panic!("a batch of float samples failed: {e}"));
                if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
                    panic!("a batch request of float samples failed: {e}");
                }
            }
        }
        let stored = read(&store, &Query::all(), ReadOptions::forward()).await;
        assert_eq!(stored.len(), written.len(), "every float sample read back");

        let mut changed: Vec<String> = Vec::new();
        let mut counts = [0usize; 2];
        for (index, (event, new)) in stored.iter().zip(&written).enumerate() {
            let codec = new.payload.codec;
            let (value, single) = samples[index % SAMPLES];
            let slot = usize::from(codec == Codec::MessagePack);
            let back: Sample = match event.payload.decode() {
                Ok(back) => back,
                Err(e) => {
                    counts[slot] += 1;
                    if changed.len() < 5 {
                        changed.push(format!(
                            "{} {value:?}/{single:?} at {} does not decode: {e}",
                            codec.name(),
                            event.position
                        ));
                    }
                    continue;
                }
            };
            let mut differs = back.value.to_bits() != value.to_bits()
                || back.single.to_bits() != single.to_bits();
            if codec == Codec::Json {
                let as_json = |p: &Payload| p.decode_value().ok();
                differs |= as_json(&event.payload) != as_json(&new.payload);
            }
            if differs {
                counts[slot] += 1;
                if changed.len() < 5 {
                    changed.push(format!(
                        "{} {:?}/{:?} came back as {:?}/{:?} ({})",
                        codec.name(),
                        value,
                        single,
                        back.value,
                        back.single,
                        String::from_utf8_lossy(&event.payload.bytes)
                    ));
                }
            }
        }
        assert!(
            changed.is_empty(),
            "{} of {SAMPLES} JSON samples and {} of {SAMPLES} MessagePack samples came back \
             changed (each an f64 and an f32, compared bit for bit; a JSON float must stay a \
             float): {}",
            counts[0],
            counts[1],
            changed.join("; ")
        );

        let values: Vec<f64> = samples.iter().map(|(v, _)| *v).collect();
        for codec in [Codec::Json, Codec::MessagePack] {
            let key = format!("conformance.Floats {}", codec.name());
            let payload = codec
                .encode("snapshot", &values)
                .unwrap_or_else(|e| panic!("the float snapshot did not encode: {e}"));
            store
                .save_snapshot(Snapshot {
                    key: key.clone(),
                    query: "floats".to_owned(),
                    position: Position(1),
                    payload,
                })
                .await
                .unwrap_or_else(|e| panic!("saving the float snapshot failed: {e}"));
            let loaded = store
                .load_snapshot(&key)
                .await
                .unwrap_or_else(|e| panic!("loading the float snapshot failed: {e}"))
                .unwrap_or_else(|| panic!("the float snapshot {key} is missing"));
            let back: Vec<f64> = loaded
                .payload
                .decode()
                .unwrap_or_else(|e| panic!("the float snapshot {key} does not decode: {e}"));
            let differing = values
                .iter()
                .zip(&back)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            assert!(
                back.len() == values.len() && differing == 0,
                "{differing} of {SAMPLES} f64 values of a {} snapshot came back changed",
                codec.name()
            );
        }
    })
    .await;
}
