//! Decodes every line of a file of events five times and prints the sum of the first feature
//! read: what decoding one record costs, under
//! `valgrind --tool=callgrind target/release/examples/decode FILE [MODEL]` (BENCHMARKS.md,
//! issue 24). Without MODEL the events are the salary demo's; with it, those of the model in
//! that artifact (the ten-feature diabetes model's, say).

use std::io::BufRead;

use salary_stream::formats::json;
use salary_stream::formats::shape::EventShape;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: decode FILE [MODEL] (one JSON event a line)");
        std::process::exit(2);
    };
    let shape = match args.next() {
        None => EventShape::salary().clone(),
        Some(model) => {
            let shape = salary_stream::model::Artifact::load(std::path::Path::new(&model))
                .map_err(|e| e.to_string())
                .and_then(|a| salary_stream::serving::scoring::event_shape(&a));
            match shape {
                Ok(shape) => shape,
                Err(e) => {
                    eprintln!("decode: {model}: {e}");
                    std::process::exit(1);
                }
            }
        }
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
            if let Ok(event) = json::decode_as(&shape, Some(line)) {
                sum += event.features[0];
            }
        }
    }
    println!("{sum}");
}
