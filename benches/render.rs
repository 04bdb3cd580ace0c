//! Frame rendering as a micro-benchmark (divan): one full dashboard frame into a test backend,
//! at the sizes the snapshot tests use. `cargo bench --bench render`.

mod common;

use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn main() {
    // No flags of divan's: `cargo bench -- --records N` hands the pipeline bench's flags to
    // every bench, and divan's parser would refuse them.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let divan = divan::Divan::default();
    if args.iter().any(|a| a == "--test") {
        divan.test_benches();
    } else {
        divan.run_benches();
    }
}

/// One frame of the filled dashboard at `(width, height)`.
#[divan::bench(args = [(80, 24), (120, 40), (200, 50)])]
fn frame(bencher: divan::Bencher, (width, height): (u16, u16)) {
    let app = common::known_app();
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
    bencher.bench_local(|| {
        terminal
            .draw(|f| salary_stream::ui::render(f, divan::black_box(&app)))
            .expect("draw")
            .area
    });
}
