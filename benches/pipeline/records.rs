//! The files every tool reads: the synthetic records and a challenger model.

use std::io::Write;

/// Writes `records` synthetic records (the producer's own generator, seed 1) to a file in `dir`;
/// returns its path and the records' average size in bytes.
pub fn write_records(dir: &std::path::Path, records: u64) -> (String, f64) {
    std::fs::create_dir_all(dir).expect("temp dir");
    let file = dir.join("records.ndjson");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).expect("records file"));
    let mut generator =
        salary_stream::serving::producer::EventGenerator::new((1.1, 10.5), None, Some(1));
    let mut buf = Vec::new();
    for _ in 0..records {
        generator.next_event(&mut buf, salary_stream::engine::now_ms());
        out.write_all(&buf)
            .and_then(|()| out.write_all(b"\n"))
            .expect("write records");
    }
    out.flush().expect("write records");
    let record_bytes =
        std::fs::metadata(&file).map_or(0, |m| m.len()) as f64 / records as f64 - 1.0;
    (file.to_string_lossy().into_owned(), record_bytes)
}

/// Writes the committed model with its line 20% higher, as another version, to a file in `dir`;
/// returns its path.
pub fn write_challenger(dir: &std::path::Path) -> String {
    let mut artifact =
        salary_stream::model::Artifact::load(std::path::Path::new("assets/model.json"))
            .expect("assets/model.json");
    artifact.version = "bench0c1".into();
    let line = artifact.linear_mut().expect("a linear model");
    line.coefficients[0] *= 1.2;
    line.intercept *= 1.2;
    let path = dir.join("challenger.json");
    artifact.save(&path).expect("challenger artifact");
    path.to_string_lossy().into_owned()
}
