//! The `extern "C"` side of the boundary: generic entry points that turn raw ABI arguments into
//! slices, call the author's Rust code inside `catch_unwind`, and turn panics into status codes;
//! the const builders of descriptors; and the [`export_plugin!`](crate::export_plugin) macro.

use crate::abi::{
    status, CheckParamsFn, EvalArgs, EvalFn, EvalOut, FunctionDescriptor, MsgBuf, ParamDescriptor,
    ProxArgs, ProxFn, Str,
};
use crate::elementwise::{Elementwise, Order, Piecewise, PiecewiseFn, Smooth, SmoothFn};
use std::panic::{catch_unwind, AssertUnwindSafe};

impl ParamDescriptor {
    /// A parameter with a default value.
    pub const fn with_default(name: &'static str, default: f64) -> ParamDescriptor {
        ParamDescriptor {
            name: Str::new(name),
            default,
            has_default: 1,
        }
    }

    /// A parameter the model must give.
    pub const fn required(name: &'static str) -> ParamDescriptor {
        ParamDescriptor {
            name: Str::new(name),
            default: 0.0,
            has_default: 0,
        }
    }
}

/// The descriptor of an [`Elementwise`] function (usable in a `static`).
pub const fn function<T: Elementwise>() -> FunctionDescriptor {
    FunctionDescriptor {
        name: Str::new(T::NAME),
        kind: T::KIND as u32,
        smoothness: T::SMOOTHNESS as u32,
        params: T::PARAMS.as_ptr(),
        n_params: T::PARAMS.len(),
        breakpoints: T::BREAKPOINTS.as_ptr(),
        n_breakpoints: T::BREAKPOINTS.len(),
        eval: eval_entry::<T> as EvalFn,
        prox: if T::HAS_PROX {
            Some(prox_entry::<T> as ProxFn)
        } else {
            None
        },
        check_params: Some(check_params_entry::<T> as CheckParamsFn),
    }
}

/// The descriptor of a [`Smooth`] function.
pub const fn smooth<T: Smooth>() -> FunctionDescriptor {
    function::<SmoothFn<T>>()
}

/// The descriptor of a [`Piecewise`] function.
pub const fn piecewise<T: Piecewise>() -> FunctionDescriptor {
    function::<PiecewiseFn<T>>()
}

thread_local! {
    /// Where the last panic on this thread happened (set by the quiet hook).
    static PANIC_LOCATION: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// In a plugin built as a shared library (which has its own copy of std and so its own panic
/// hook), replace the hook with one that prints nothing and remembers the location: the host
/// reports the panic as a diagnostic instead. Called by the entry symbol; never called when
/// the plugin is linked into mcopt itself.
pub fn install_quiet_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let loc = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
            PANIC_LOCATION.with(|p| *p.borrow_mut() = loc);
        }));
    });
}

/// Text of a caught panic payload, with its location when the quiet hook recorded it.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    };
    match PANIC_LOCATION.with(|p| p.borrow_mut().take()) {
        Some(loc) => format!("panicked at {loc}: {text}"),
        None => format!("panicked: {text}"),
    }
}

/// Run `body` so that no panic escapes: a panic becomes [`status::PANIC`] with its message in
/// `msg`, an `Err` becomes `err_status` with the message.
///
/// # Safety
/// `msg` must be null or point to a valid [`MsgBuf`].
#[inline]
pub unsafe fn guarded(msg: *mut MsgBuf, body: impl FnOnce() -> Result<(), (i32, String)>) -> i32 {
    let report = |text: &str| {
        // SAFETY: the caller passes a valid message buffer or null.
        if let Some(m) = unsafe { msg.as_mut() } {
            // SAFETY: a valid MsgBuf from the host has `cap` writable bytes at `ptr` (or a
            // null `ptr`), which cannot overlap `text`, a string of ours.
            unsafe { m.write(text) };
        }
    };
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => status::OK,
        Ok(Err((code, text))) => {
            report(&text);
            code
        }
        Err(payload) => {
            report(&panic_message(payload.as_ref()));
            status::PANIC
        }
    }
}

/// A slice from an ABI pointer; `n == 0` gives an empty slice whatever the pointer.
///
/// # Safety
/// Unless null or `n == 0`, `p` must point to `n` readable `f64` for `'a`.
unsafe fn slice<'a>(p: *const f64, n: usize) -> Option<&'a [f64]> {
    if n == 0 {
        Some(&[])
    } else if p.is_null() {
        None
    } else {
        // SAFETY: non-null, and the caller guarantees `n` readable values for `'a`.
        Some(unsafe { std::slice::from_raw_parts(p, n) })
    }
}

/// Mutable counterpart of [`slice`].
///
/// # Safety
/// Unless null or `n == 0`, `p` must point to `n` writable `f64`, not aliased, for `'a`.
unsafe fn slice_mut<'a>(p: *mut f64, n: usize) -> Option<&'a mut [f64]> {
    if n == 0 {
        Some(&mut [])
    } else if p.is_null() {
        None
    } else {
        // SAFETY: non-null, and the caller guarantees `n` writable, unaliased values for `'a`.
        Some(unsafe { std::slice::from_raw_parts_mut(p, n) })
    }
}

fn bad(text: &str) -> (i32, String) {
    (status::BAD_ARGS, text.to_string())
}

/// The vectorized ray-Taylor entry of `T`.
///
/// # Safety
/// `args` and `out` must be valid; the slices they describe must be valid for `n` elements.
pub unsafe extern "C" fn eval_entry<T: Elementwise>(
    args: *const EvalArgs,
    out: *mut EvalOut,
) -> i32 {
    // SAFETY: the caller passes a valid `out` or null.
    let Some(out) = (unsafe { out.as_mut() }) else {
        return status::BAD_ARGS;
    };
    let msg: *mut MsgBuf = &mut out.message;
    let kinks: *mut usize = &mut out.active_kinks;
    // SAFETY: `msg` points into the valid `out`; `eval_body` gets the caller's valid `args`
    // and `kinks`, which points into `out` and is not aliased by the message buffer.
    unsafe { guarded(msg, || eval_body::<T>(args, kinks)) }
}

/// The body of [`eval_entry`], inside the panic guard.
///
/// # Safety
/// As for [`eval_entry`]; `kinks` points into its valid `out`.
unsafe fn eval_body<T: Elementwise>(
    args: *const EvalArgs,
    kinks: *mut usize,
) -> Result<(), (i32, String)> {
    // SAFETY: the caller passes valid arguments or null.
    let args = unsafe { args.as_ref() }.ok_or_else(|| bad("null arguments"))?;
    let order = Order::from_u32(args.order).ok_or_else(|| bad("order must be 0, 1 or 2"))?;
    if args.n_params != T::PARAMS.len() {
        return Err(bad(&format!(
            "{} takes {} parameter(s), got {}",
            T::NAME,
            T::PARAMS.len(),
            args.n_params
        )));
    }
    // SAFETY (each slice below): valid arguments describe `n_params` parameters and, for
    // k ≤ order, `n` readable a[k] and `n` writable, unaliased f[k]; beyond the order the
    // length is 0 and the pointer is not read.
    let params =
        // SAFETY: as the SAFETY note above says for these slices.
        unsafe { slice(args.params, args.n_params) }.ok_or_else(|| bad("null parameters"))?;
    let k = args.order as usize;
    let len = |j: usize| if j <= k { args.n } else { 0 };
    let null = || bad("null coefficient slice");
    let a = [
        // SAFETY: as the SAFETY note above says for these slices.
        unsafe { slice(args.a[0], len(0)) }.ok_or_else(null)?,
        // SAFETY: as the SAFETY note above says for these slices.
        unsafe { slice(args.a[1], len(1)) }.ok_or_else(null)?,
        // SAFETY: as the SAFETY note above says for these slices.
        unsafe { slice(args.a[2], len(2)) }.ok_or_else(null)?,
    ];
    let f = [
        // SAFETY: as the SAFETY note above says for these slices.
        unsafe { slice_mut(args.f[0], len(0)) }.ok_or_else(null)?,
        // SAFETY: as the SAFETY note above says for these slices.
        unsafe { slice_mut(args.f[1], len(1)) }.ok_or_else(null)?,
        // SAFETY: as the SAFETY note above says for these slices.
        unsafe { slice_mut(args.f[2], len(2)) }.ok_or_else(null)?,
    ];
    let active = T::eval(params, order, args.ztol, a, f);
    // SAFETY: `kinks` points into the caller's valid `out`, not aliased by the slices.
    unsafe { *kinks = active };
    Ok(())
}

/// The proximal-map entry of `T`.
///
/// # Safety
/// `args` must be valid and describe valid slices; `msg` valid or null.
pub unsafe extern "C" fn prox_entry<T: Elementwise>(
    args: *const ProxArgs,
    msg: *mut MsgBuf,
) -> i32 {
    let body = || {
        // SAFETY: the caller passes valid arguments or null.
        let args = unsafe { args.as_ref() }.ok_or_else(|| bad("null arguments"))?;
        if args.n_params != T::PARAMS.len() {
            return Err(bad("wrong number of parameters"));
        }
        // SAFETY (each slice): valid arguments describe `n_params` parameters, `n` readable
        // inputs and `n` writable outputs that alias neither.
        let params =
            // SAFETY: as the SAFETY note above says for these slices.
            unsafe { slice(args.params, args.n_params) }.ok_or_else(|| bad("null parameters"))?;
        // SAFETY: as the SAFETY note above says for these slices.
        let v = unsafe { slice(args.v, args.n) }.ok_or_else(|| bad("null input"))?;
        // SAFETY: as the SAFETY note above says for these slices.
        let out = unsafe { slice_mut(args.out, args.n) }.ok_or_else(|| bad("null output"))?;
        T::prox(params, args.step, v, out).map_err(|e| (status::ERROR, e))
    };
    // SAFETY: the caller passes a valid message buffer or null.
    unsafe { guarded(msg, body) }
}

/// The parameter check entry of `T`.
///
/// # Safety
/// `params` must point to `n_params` values (or be null with 0); `msg` valid or null.
pub unsafe extern "C" fn check_params_entry<T: Elementwise>(
    params: *const f64,
    n_params: usize,
    msg: *mut MsgBuf,
) -> i32 {
    let body = || {
        if n_params != T::PARAMS.len() {
            return Err(bad("wrong number of parameters"));
        }
        // SAFETY: the caller passes `n_params` readable values (or null with 0).
        let params = unsafe { slice(params, n_params) }.ok_or_else(|| bad("null parameters"))?;
        T::check_params(params).map_err(|e| (status::ERROR, e))
    };
    // SAFETY: the caller passes a valid message buffer or null.
    unsafe { guarded(msg, body) }
}

/// Write the plugin's entry symbol and its static descriptor.
///
/// ```ignore
/// mcopt_plugin_sdk::export_plugin! {
///     name: "swish",
///     version: env!("CARGO_PKG_VERSION"),
///     functions: [mcopt_plugin_sdk::smooth::<Swish>()],
///     solvers: [],
/// }
/// ```
///
/// This defines `pub static PLUGIN_DESCRIPTOR` and the `extern "C"` symbol
/// [`ENTRY_SYMBOL`](crate::abi::ENTRY_SYMBOL). Every entry point in the tables is one of the SDK's
/// generic wrappers, which run the author's code inside `catch_unwind`: no panic crosses the
/// boundary, the host gets an error status and the panic message instead.
#[macro_export]
macro_rules! export_plugin {
    (
        name: $name:expr,
        version: $version:expr,
        functions: [$($f:expr),* $(,)?],
        solvers: [$($s:expr),* $(,)?] $(,)?
    ) => {
        static __MCOPT_FUNCTIONS: &[$crate::abi::FunctionDescriptor] = &[$($f),*];
        static __MCOPT_SOLVERS: &[$crate::abi::SolverDescriptor] = &[$($s),*];

        /// This plugin's descriptor (what the entry symbol returns).
        pub static PLUGIN_DESCRIPTOR: $crate::abi::PluginDescriptor = $crate::abi::PluginDescriptor {
            abi_version: $crate::abi::ABI_VERSION,
            name: $crate::abi::Str::new($name),
            version: $crate::abi::Str::new($version),
            functions: __MCOPT_FUNCTIONS.as_ptr(),
            n_functions: __MCOPT_FUNCTIONS.len(),
            solvers: __MCOPT_SOLVERS.as_ptr(),
            n_solvers: __MCOPT_SOLVERS.len(),
            capabilities: $crate::abi::CAP_FUNCTIONS
                | $crate::abi::CAP_SOLVERS
                | $crate::abi::CAP_CHECK_PARAMS,
        };

        /// The plugin entry symbol.
        #[no_mangle]
        pub extern "C" fn mcopt_plugin_entry() -> *const $crate::abi::PluginDescriptor {
            $crate::export::install_quiet_panic_hook();
            &PLUGIN_DESCRIPTOR
        }
    };
}
