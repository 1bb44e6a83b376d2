//! Criterion benchmarks of the pure stages one webhook goes through: verification of a 3 KB body,
//! normalize → route → render → fit with the example templates, and the fit of an over-long text.
//! Run: `cargo bench --bench pipeline`; results are summarized in BENCHMARKS.md.

use std::hint::black_box;

use chirpd::config;
use chirpd::normalize::Provider;
use chirpd::plan;
use chirpd::render::fit::{self, Limit};
use chirpd::verify::Incoming;
use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/samples/github/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The example config reads its source's secret from the environment; the benchmark supplies one.
const DEMO_SECRET: &str = "a-demo-secret-of-32-characters!!";

struct DemoEnv;

impl config::Env for DemoEnv {
    fn var(&self, name: &str) -> Option<String> {
        (name == "ACME_GITHUB_SECRET").then(|| DEMO_SECRET.to_string())
    }
    fn vars(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

fn benches(c: &mut Criterion) {
    let path = format!("{}/config/chirpd.example.toml", env!("CARGO_MANIFEST_DIR"));
    let cfg = config::load(Some(std::path::Path::new(&path)), &DemoEnv).unwrap();
    let source = &cfg.sources["acme-github"];

    // A 3 KB body signed as GitHub signs it.
    let mut body = sample("issues.opened.json");
    body.truncate(3072);
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(DEMO_SECRET.as_bytes()).unwrap();
    mac.update(&body);
    let mut headers = http::HeaderMap::new();
    let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    headers.insert("x-hub-signature-256", sig.parse().unwrap());
    c.bench_function("verify github 3 KB", |b| {
        let req = Incoming {
            headers: &headers,
            query: None,
            body: &body,
            learned_secret: None,
        };
        b.iter(|| black_box(source.verifier.verify(black_box(&req), 0)).unwrap())
    });

    let payload: serde_json::Value = serde_json::from_slice(&sample("issues.opened.json")).unwrap();
    c.bench_function("plan issues.opened (normalize, route, render, fit)", |b| {
        b.iter(|| {
            let p = plan::plan(
                &cfg.pipeline,
                "acme-github",
                &Provider::Github,
                Some("issues"),
                black_box(&payload),
            );
            assert_eq!(p.posts.len(), 1);
        })
    });

    let comment: serde_json::Value =
        serde_json::from_slice(&sample("issue_comment.created.json")).unwrap();
    c.bench_function("parse + plan issue_comment (JSON parse included)", |b| {
        let raw = serde_json::to_vec(&comment).unwrap();
        b.iter(|| {
            let v: serde_json::Value = serde_json::from_slice(black_box(&raw)).unwrap();
            black_box(plan::plan(
                &cfg.pipeline,
                "acme-github",
                &Provider::Github,
                Some("issue_comment"),
                &v,
            ))
        })
    });

    let long = format!(
        "acme/widgets: alice opened {} https://github.com/acme/widgets/issues/1",
        "word ".repeat(200)
    );
    c.bench_function("fit 1 KB text to 280", |b| {
        b.iter(|| black_box(fit::fit(black_box(&long), Limit::Tweet)))
    });
    let short = "acme/widgets: alice opened #12 Fix the login page https://github.com/acme/widgets/issues/12";
    c.bench_function("weighted length of a typical post", |b| {
        b.iter(|| black_box(fit::weighted_length(black_box(short))))
    });
}

criterion_group!(pipeline, benches);
criterion_main!(pipeline);
