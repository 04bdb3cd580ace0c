//! Decodes every line of a file of salary events five times with the demo's decoder and prints
//! the sum of the years read: what decoding one record costs, under
//! `valgrind --tool=callgrind target/release/examples/decode FILE` (BENCHMARKS.md, issue 24).

use std::io::BufRead;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: decode FILE (one JSON event a line)");
        std::process::exit(2);
    };
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("decode: {path}: {e}");
            std::process::exit(1);
        }
    };
    let lines: Vec<Vec<u8>> = std::io::BufReader::new(file)
        .split(b'\n')
        .map_while(Result::ok)
        .collect();
    let mut sum = 0.0;
    for _ in 0..5 {
        for line in &lines {
            if let Ok(event) = salary_stream::formats::json::decode(Some(line)) {
                sum += event.features[0];
            }
        }
    }
    println!("{sum}");
}
