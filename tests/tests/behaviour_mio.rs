//! The behaviour suite (ws_tests::suite) against ws-mio. Each adapter has its own test binary, so
//! a crash of one (an abort kills the whole process) cannot hide the other's results.

ws_tests::behaviour_tests!(mio, ws_tests::adapters::Mio);

/// Every `pub fn NAME<A: Adapter>()` of the suite is instantiated (a function missing from the
/// list in `behaviour_tests!` would silently never run).
#[test]
fn every_suite_function_is_instantiated() {
    let defined = ws_tests::suite_functions(include_str!("../src/suite.rs"));
    assert!(
        defined.len() > 40,
        "parsed only {} suite functions",
        defined.len()
    );
    for name in &defined {
        assert!(
            mio::NAMES.contains(&name.as_str()),
            "suite function {name} is not in behaviour_tests!"
        );
    }
    assert_eq!(
        defined.len(),
        mio::NAMES.len(),
        "behaviour_tests! lists a name twice or one that is not defined"
    );
}
