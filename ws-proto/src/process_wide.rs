//! One value for the whole process, for the pools that connections on any thread borrow from.

/// Declares `fn $with<R>(f: impl FnOnce(&mut $ty) -> R) -> R`, which runs `f` on one `$ty` shared
/// by the whole process, behind a mutex. Poisoning is ignored: a pool holds whole values between
/// calls, so it is consistent even after a panic. In unit tests there is one per thread instead,
/// since tests run on threads of their own and count what their pool holds.
macro_rules! process_wide {
    ($(#[$doc:meta])* $with:ident: $ty:ty = $init:expr) => {
        $(#[$doc])*
        fn $with<R>(f: impl FnOnce(&mut $ty) -> R) -> R {
            #[cfg(not(test))]
            {
                static VALUE: std::sync::Mutex<$ty> = std::sync::Mutex::new($init);
                f(&mut VALUE.lock().unwrap_or_else(|p| p.into_inner()))
            }
            #[cfg(test)]
            {
                thread_local! {
                    static VALUE: std::cell::RefCell<$ty> = const { std::cell::RefCell::new($init) };
                }
                VALUE.with(|v| f(&mut v.borrow_mut()))
            }
        }
    };
}
