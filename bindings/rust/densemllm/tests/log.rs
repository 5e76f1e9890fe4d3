//! The log sink: the library's messages reach a Rust closure (every failure is logged at DEBUG),
//! and None silences the library. A test binary of its own: the sink is process-wide.
use densemllm::{Image, LogLevel, set_log};
use std::sync::{Arc, Mutex};

mod common;

#[test]
fn failures_reach_the_sink() {
    let seen = Arc::new(Mutex::new(Vec::<(LogLevel, String)>::new()));
    let sink = seen.clone();
    // SAFETY: no other thread of this test binary uses the library.
    unsafe { set_log(Some(Box::new(move |level, message| sink.lock().unwrap().push((level, message.to_owned()))))) };
    let err = Image::load(common::fixture("images/not_there.png")).unwrap_err();
    let logged = seen.lock().unwrap().clone();
    assert!(
        logged.iter().any(|(level, m)| *level == LogLevel::Debug && m.contains(err.message())),
        "the failure was not logged: {logged:?}"
    );
    unsafe { set_log(None) };
    let before = seen.lock().unwrap().len();
    Image::load(common::fixture("images/not_there.png")).unwrap_err();
    assert_eq!(seen.lock().unwrap().len(), before, "a silenced library still called the old sink");
}
