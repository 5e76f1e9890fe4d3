//! The repr(C) structs have the C sizes, and the *_params_init() functions fill them as the
//! header documents: a wrong or missing field shifts struct_size and the defaults read back.
use densemllm_sys::*;
use std::ffi::CStr;
use std::mem::{MaybeUninit, size_of};

/// A params struct filled by its C init function.
fn init<T>(f: unsafe extern "C" fn(*mut T)) -> T {
    let mut p = MaybeUninit::<T>::uninit();
    // SAFETY: the init functions write every field of the struct.
    unsafe {
        f(p.as_mut_ptr());
        p.assume_init()
    }
}

#[test]
fn params_sizes_match_the_library() {
    assert_eq!(size_of::<dmllm_model_params>(), dmllm_model_params_sizeof());
    assert_eq!(size_of::<dmllm_session_params>(), dmllm_session_params_sizeof());
    assert_eq!(size_of::<dmllm_image_params>(), dmllm_image_params_sizeof());
    assert_eq!(size_of::<dmllm_dense_params>(), dmllm_dense_params_sizeof());
    assert_eq!(size_of::<dmllm_seg_metrics_params>(), dmllm_seg_metrics_params_sizeof());
    assert_eq!(size_of::<dmllm_depth_metrics_params>(), dmllm_depth_metrics_params_sizeof());
    assert_eq!(size_of::<dmllm_generate_params>(), dmllm_generate_params_sizeof());
    assert_eq!(size_of::<dmllm_crop_params>(), dmllm_crop_params_sizeof());
    assert_eq!(size_of::<dmllm_crf_params>(), dmllm_crf_params_sizeof());
    assert_eq!(size_of::<dmllm_overlay_params>(), dmllm_overlay_params_sizeof());
}

/// dmllm_region grows by struct_size: the library allocates each region on its own and hands out
/// an array of pointers, each region stamped with the size the library filled.
#[test]
fn regions_are_pointers_to_sized_structs() {
    let mut out = std::ptr::null_mut();
    let text = c"<ref>a</ref><box><x_1><y_2><x_3><y_4></box><ref>b</ref><box><x_5><y_6><x_7><y_8></box>";
    // SAFETY: a valid string and out pointer; the result is read, then freed once.
    unsafe {
        assert_eq!(dmllm_parse_regions(text.as_ptr(), &mut out), DMLLM_OK);
        let r = &*out;
        assert_eq!(r.n_regions, 2);
        let second = &**r.regions.add(1);
        assert_eq!(second.struct_size as usize, size_of::<dmllm_region>());
        assert_eq!((CStr::from_ptr(second.label), second.r#box), (c"b", [5, 6, 7, 8]));
        dmllm_regions_free(out);
    }
}

#[test]
fn params_defaults_are_the_documented_ones() {
    let m = init(dmllm_model_params_init);
    assert_eq!(m.struct_size as usize, size_of::<dmllm_model_params>());
    assert_eq!((m.compute, m.check_only, m.memory_limit_bytes), (DMLLM_COMPUTE_AUTO, 0, 0));
    assert_eq!(m.weights, DMLLM_WEIGHTS_AUTO);
    assert!(m.progress.is_none() && m.cache_dir.is_null());

    let s = init(dmllm_session_params_init);
    assert_eq!(s.struct_size as usize, size_of::<dmllm_session_params>());
    assert_eq!((s.max_num_patches, s.resize_mode), (DMLLM_DEFAULT_MAX_NUM_PATCHES, DMLLM_RESIZE_HF));
    assert_eq!(s.memory_limit_bytes, 0);

    let i = init(dmllm_image_params_init);
    assert_eq!(i.struct_size as usize, size_of::<dmllm_image_params>());
    assert_eq!(
        (i.max_pixels, i.max_encoded_bytes, i.memory_limit_bytes),
        (DMLLM_DEFAULT_MAX_IMAGE_PIXELS, DMLLM_DEFAULT_MAX_IMAGE_BYTES, 0)
    );

    let d = init(dmllm_dense_params_init);
    assert_eq!(d.struct_size as usize, size_of::<dmllm_dense_params>());
    assert_eq!((d.task, d.layout, d.alignment), (DMLLM_TASK_SEMANTIC, DMLLM_LAYOUT_IMAGE_FIRST, DMLLM_FROM_PROFILE));
    assert_eq!((d.focal_length_px, d.keep_token_scores, d.readout), (0.0, 0, DMLLM_FROM_PROFILE));

    let seg = init(dmllm_seg_metrics_params_init);
    assert_eq!((seg.n_classes, seg.ignore_index, seg.reduce_zero_label), (0, 255, 0));

    let depth = init(dmllm_depth_metrics_params_init);
    assert_eq!((depth.min_depth, depth.max_depth, depth.crop), (1e-3, 10.0, DMLLM_DEPTH_CROP_NONE));

    let g = init(dmllm_generate_params_init);
    assert_eq!(g.struct_size as usize, size_of::<dmllm_generate_params>());
    assert_eq!((g.max_new_tokens, g.do_sample, g.top_k), (4096, 0, 0));
    assert_eq!((g.temperature, g.top_p, g.repetition_penalty), (1.0, 1.0, 1.05));
    assert_eq!((g.seed, g.n_stop_ids, g.skip_special, g.rescale_coordinates), (0, 0, 1, 1));
    assert!(g.stop_ids.is_null() && g.on_token.is_none());

    let c = init(dmllm_crop_params_init);
    assert_eq!(c.struct_size as usize, size_of::<dmllm_crop_params>());
    assert_eq!(
        (c.padding, c.short_side, c.box_px),
        (DMLLM_FROM_PROFILE as f32, DMLLM_FROM_PROFILE, DMLLM_FROM_PROFILE)
    );
    assert_eq!((c.box_rgb, c.max_regions), ([255, 0, 0], 30));
    assert!(c.generate.is_null());
}

/// Output structs without a sizeof function: the library rejects a struct_size larger than its
/// own, and the last field must come back where the header puts it.
#[test]
fn caller_sized_outputs_fit_the_library() {
    unsafe {
        let mut params = init(dmllm_depth_metrics_params_init);
        params.max_depth = 100.0;
        let mut metrics = std::ptr::null_mut();
        assert_eq!(dmllm_depth_metrics_create(&params, &mut metrics), DMLLM_OK);
        // pred 2 m everywhere against gt 1 m: silog 0 (constant log ratio), abs_rel 1.
        let (pred, gt) = ([2.0f32; 4], [1.0f32; 4]);
        assert_eq!(dmllm_depth_metrics_add(metrics, pred.as_ptr(), 2, 2, gt.as_ptr(), 2, 2), DMLLM_OK);
        let mut scores =
            dmllm_depth_scores { struct_size: size_of::<dmllm_depth_scores>() as u32, ..Default::default() };
        assert_eq!(dmllm_depth_metrics_result(metrics, &mut scores), DMLLM_OK);
        assert_eq!((scores.n_images, scores.n_pixels, scores.abs_rel, scores.rmse), (1, 4, 1.0, 1.0));
        assert!(scores.silog.abs() < 1e-9);
        dmllm_depth_metrics_free(metrics);

        let mut masks = std::ptr::null_mut();
        assert_eq!(dmllm_mask_metrics_create(&mut masks), DMLLM_OK);
        assert_eq!(dmllm_mask_metrics_add(masks, [1u8, 1, 0, 0].as_ptr(), [1u8, 0, 0, 255].as_ptr(), 4), DMLLM_OK);
        let mut m = dmllm_mask_scores { struct_size: size_of::<dmllm_mask_scores>() as u32, ..Default::default() };
        assert_eq!(dmllm_mask_metrics_result(masks, &mut m), DMLLM_OK);
        assert_eq!((m.sum_intersection, m.sum_union, m.ciou, m.giou), (1, 2, 0.5, 0.5));
        dmllm_mask_metrics_free(masks);
    }
}

#[test]
fn version_and_status_strings() {
    assert_eq!(dmllm_version_number(), DMLLM_VERSION_NUMBER);
    let version = unsafe { CStr::from_ptr(dmllm_version_string()) }.to_str().unwrap();
    assert_eq!(version, format!("{DMLLM_VERSION_MAJOR}.{DMLLM_VERSION_MINOR}.{DMLLM_VERSION_PATCH}"));
    for status in DMLLM_ERR_CONTEXT_FULL..=DMLLM_OK {
        assert!(!unsafe { CStr::from_ptr(dmllm_status_str(status)) }.is_empty());
    }
}

#[test]
fn overlay_params_defaults_are_the_documented_ones() {
    let o = init(dmllm_overlay_params_init);
    assert_eq!(o.struct_size as usize, size_of::<dmllm_overlay_params>());
    assert_eq!((o.alpha, o.background_label, o.outline_px, o.legend), (0.5, -1, DMLLM_AUTO, 1));
    assert!(o.boxes.is_null() && o.n_boxes == 0);
}
