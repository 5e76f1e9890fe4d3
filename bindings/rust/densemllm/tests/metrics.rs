//! The metrics against the numpy vectors of docs/metrics.md (../shared), relative tolerance 1e-9.
use densemllm::{DepthMetrics, DepthMetricsParams, MaskMetrics, SegMetrics, SegMetricsParams, Status, box_iou};

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-9 * b.abs().max(1e-12)
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(close(*g, *w), "{what}[{i}] = {g}, expected {w}");
    }
}

#[test]
fn semantic_vectors_a_and_b() {
    let params = SegMetricsParams::new(5).reduce_zero_label(true);
    let mut m = SegMetrics::new(params).unwrap();
    assert_eq!(m.result().unwrap_err().status(), Status::State, "a result before any image");
    // Vector A.
    let gt_raw: [u16; 16] = [0, 1, 1, 2, 3, 3, 2, 2, 1, 1, 3, 0, 2, 2, 2, 3];
    let pred: [u16; 16] = [1, 0, 0, 1, 2, 3, 1, 1, 0, 2, 2, 2, 1, 1, 3, 3];
    m.add(&pred, &gt_raw).unwrap();
    let r = m.result().unwrap();
    assert_eq!(r.area_intersect, [3, 5, 2, 0, 0]);
    assert_eq!(r.area_union, [4, 6, 5, 3, 0]);
    assert_eq!(r.area_pred, [3, 5, 3, 3, 0]);
    assert_eq!(r.area_label, [4, 6, 4, 0, 0]);
    assert_close(&r.iou, &[0.75, 5.0 / 6.0, 0.4, 0.0, f64::NAN], "IoU A");
    assert_close(&r.acc, &[0.75, 5.0 / 6.0, 0.5, f64::NAN, f64::NAN], "Acc A");
    assert_close(&[r.miou, r.macc, r.aacc], &[0.49583333333333335, 0.6944444444444445, 10.0 / 14.0], "A");
    assert_eq!((r.n_classes, r.n_images, r.n_iou_classes, r.n_acc_classes), (5, 1, 4, 3));
    // Vector B: areas accumulate before dividing.
    m.add(&[3, 3, 0, 0], &[4, 4, 4, 1]).unwrap();
    let r = m.result().unwrap();
    assert_close(&r.iou, &[2.0 / 3.0, 5.0 / 6.0, 0.4, 1.0 / 3.0, f64::NAN], "IoU B");
    assert_close(&[r.miou, r.macc, r.aacc], &[0.5583333333333333, 0.7, 0.7222222222222222], "B");
    // A GT label that is neither a class nor ignored fails and leaves the accumulator unchanged.
    let err = m.add(&[0], &[7]).unwrap_err();
    assert_eq!(err.status(), Status::InvalidArgument, "{err}");
    assert_eq!(m.result().unwrap().n_images, 2);
    assert_eq!(m.add(&[0, 0], &[0]).unwrap_err().status(), Status::InvalidArgument);
}

#[test]
fn depth_vectors_c1_c2_c3() {
    let c1_pred = [1.1, 1.6, 5.2, 3.0, 3.0, 5.0];
    let c1_gt = [1.0, 2.0, 4.0, 0.0, 12.0, 5.0];
    let c2_pred = [0.0f32, 11.0, f32::NAN, 9.0];
    let c2_gt = [0.5f32, 8.0, 2.5, 9.99];
    let scores = |s: densemllm::DepthScores| {
        [s.delta1, s.delta2, s.delta3, s.abs_rel, s.sq_rel, s.rmse, s.rmse_log, s.log10, s.silog]
    };
    // C1 through the f64 entry point: exact inputs (as f32, 2 / 1.6 would fall below 1.25).
    let mut m = DepthMetrics::new(DepthMetricsParams::default()).unwrap();
    m.add_f64(&c1_pred, 3, 2, &c1_gt, 3, 2).unwrap();
    let s = m.result().unwrap();
    assert_eq!((s.n_images, s.n_pixels), (1, 4));
    let want_c1 =
        [0.5, 1.0, 1.0, 0.15, 0.1125, 0.6344288770224761, 0.17868413621319162, 0.06306151261827958, 17.549034293019155];
    assert_close(&scores(s), &want_c1, "C1");
    // C2 through the f32 entry point (NaN and out-of-range predictions are clamped); 9.99 is not
    // exact in f32, so the tolerance is float precision.
    let mut m2 = DepthMetrics::new(DepthMetricsParams::default().range(1e-3, 10.0)).unwrap();
    m2.add(&c2_pred, 2, 2, &c2_gt, 2, 2).unwrap();
    let want_c2 = [
        0.25,
        0.5,
        0.5,
        0.5866747747747748,
        0.898527627027027,
        1.693672193784854,
        4.997442692374334,
        1.5597857512006925,
        358.6677942748227,
    ];
    for (g, w) in scores(m2.result().unwrap()).iter().zip(want_c2) {
        assert!((g - w).abs() <= 1e-6 * w.abs(), "C2: {g} vs {w}");
    }
    // C3: the dataset value is the mean of the per-image values.
    m.add(&c2_pred, 2, 2, &c2_gt, 2, 2).unwrap();
    let s = m.result().unwrap();
    assert_eq!(s.n_images, 2);
    assert!((s.delta1 - 0.375).abs() < 1e-12 && (s.abs_rel - 0.3683373873873874).abs() < 1e-6, "C3 {s:?}");
    assert!((s.rmse - 1.164050535403665).abs() < 1e-6, "C3 rmse {}", s.rmse);
    // Wrong map sizes are caught before the call.
    assert_eq!(m.add(&c2_pred, 3, 2, &c2_gt, 2, 2).unwrap_err().status(), Status::InvalidArgument);
}

#[test]
fn mask_vector_d_and_box_iou() {
    let mut m = MaskMetrics::new().unwrap();
    let mask = |f: &dyn Fn(usize, usize) -> bool| (0..100).map(|i| f(i / 10, i % 10) as u8).collect::<Vec<u8>>();
    m.add(&mask(&|r, _| r <= 3), &mask(&|r, _| r <= 4)).unwrap();
    m.add(&mask(&|r, c| r >= 8 && c <= 4), &mask(&|r, c| r <= 1 && c <= 4)).unwrap();
    m.add(&mask(&|r, _| r <= 8), &mask(&|_, _| true)).unwrap();
    let s = m.result().unwrap();
    assert_eq!((s.n_samples, s.sum_intersection, s.sum_union), (3, 130, 170));
    assert!(close(s.ciou, 0.7647058823529411) && close(s.giou, 0.5666666666666667), "{s:?}");
    assert_eq!(m.add(&[2], &[0]).unwrap_err().status(), Status::InvalidArgument);

    // 2x2 boxes overlapping in a 1x1 square: 1 / (4 + 4 - 1).
    assert!(close(box_iou([0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0]).unwrap(), 1.0 / 7.0));
    assert_eq!(box_iou([0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 3.0, 3.0]).unwrap(), 0.0);
    assert_eq!(box_iou([2.0, 0.0, 1.0, 1.0], [0.0; 4]).unwrap_err().status(), Status::InvalidArgument);
}

#[test]
fn accumulators_move_between_threads() {
    let mut m = MaskMetrics::new().unwrap();
    m = std::thread::spawn(move || {
        m.add(&[1, 1, 0], &[1, 0, 0]).unwrap();
        m
    })
    .join()
    .unwrap();
    assert_eq!(m.result().unwrap().sum_union, 2);
}
