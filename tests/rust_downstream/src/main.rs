//! densemllm-downstream MODEL_DIR IMAGE: segments IMAGE into cat / grass / wall and prints the
//! share of each class.
use densemllm::{DenseParams, Image, Model, SessionParams};

fn main() -> Result<(), densemllm::Error> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model_dir, image_path] = args.as_slice() else {
        eprintln!("usage: densemllm-downstream MODEL_DIR IMAGE");
        std::process::exit(2);
    };
    let model = Model::load(model_dir)?;
    let mut session = model.session(&SessionParams::default())?;
    let image = Image::load(image_path)?;
    let classes = ["cat", "grass", "wall"];
    let seg = session.predict_dense(&image, &DenseParams::semantic(&classes))?;
    for (k, name) in classes.iter().enumerate() {
        let count = seg.labels.iter().filter(|&&l| usize::from(l) == k).count();
        println!(
            "{name}: {:.1}%",
            100.0 * count as f64 / seg.labels.len() as f64
        );
    }
    Ok(())
}
