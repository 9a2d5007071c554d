//! JWT verification per algorithm (target 7): the bare signature check, the resource
//! server's validator cold (cache of verified tokens off) and cached (a cache hit).
//!
//! `cargo bench -p bench --bench jwt`

use std::hint::black_box;

use bench::{jwt_verify::VerifyFixture, keys::KeyAlg};
use criterion::{Criterion, criterion_group, criterion_main};

fn verification(c: &mut Criterion) {
    for alg in KeyAlg::ALL {
        let fixture = VerifyFixture::new(alg).expect("fixture");
        let mut group = c.benchmark_group(format!("verify/{}", alg.name()));
        group.bench_function("signature", |b| {
            b.iter(|| assert!(black_box(&fixture).verify_signature()));
        });
        group.bench_function("cold", |b| {
            b.iter(|| assert!(black_box(&fixture).validate_cold()));
        });
        group.bench_function("cached", |b| {
            b.iter(|| assert!(black_box(&fixture).validate_cached()));
        });
        group.finish();
    }
}

criterion_group!(benches, verification);
criterion_main!(benches);
