//! How a [`CoreError`] becomes a JavaScript error: built on the JavaScript thread as a real
//! `Error` with its code as data (`err.code`, e.g. `TABLE_NOT_FOUND`) and the Rust cause chain
//! as `cause` errors, which `ts/errors.ts` turns into the typed class of the code.
//!
//! napi's own conversion only carries its `Status` as the code (and a promise rejection always
//! `GenericFailure`), so every export that can fail goes through [`throw`] (sync) or [`spawn`]
//! (async), which both have the `Env` to build the object with.

use std::future::Future;

use napi::bindgen_prelude::{JsObjectValue, Object, PromiseRaw, ToNapiValue};
use napi::{Env, JsValue, Status};
use napi_derive::napi;

use crate::error::{CoreError, CoreResult};

/// A [`CoreResult`] returned to JavaScript.
pub trait OrThrow<T> {
    /// The value, or the JavaScript error for the failure.
    fn or_throw(self, env: &Env) -> napi::Result<T>;
}

impl<T> OrThrow<T> for CoreResult<T> {
    fn or_throw(self, env: &Env) -> napi::Result<T> {
        self.map_err(|err| throw(env, &err))
    }
}

/// The JavaScript error for `err`: message, `code`, and `cause` for each source in its chain.
pub fn throw(env: &Env, err: &CoreError) -> napi::Error {
    match build(env, err) {
        Ok(error) => error,
        // Building the object failed (an exception pending): napi's own error still says what.
        Err(_) => napi::Error::new(Status::GenericFailure, err.to_string()),
    }
}

fn build(env: &Env, err: &CoreError) -> napi::Result<napi::Error> {
    let mut causes = Vec::new();
    let mut next = std::error::Error::source(err);
    while let Some(source) = next {
        causes.push(source.to_string());
        next = source.source();
    }
    let mut cause: Option<Object<'_>> = None;
    for text in causes.iter().rev() {
        let mut error = plain_error(env, text)?;
        if let Some(inner) = cause.take() {
            error.set_named_property("cause", inner)?;
        }
        cause = Some(error);
    }
    let mut error = plain_error(env, &err.to_string())?;
    error.set_named_property("code", err.code())?;
    if let Some(inner) = cause {
        error.set_named_property("cause", inner)?;
    }
    Ok(napi::Error::from(error.to_unknown()))
}

fn plain_error<'env>(env: &'env Env, message: &str) -> napi::Result<Object<'env>> {
    env.create_error(napi::Error::new(
        Status::GenericFailure,
        message.to_string(),
    ))
}

/// Runs `work` on napi's tokio runtime; its failure rejects the promise with [`throw`]'s error.
pub fn spawn<'env, T, F>(env: &'env Env, work: F) -> napi::Result<PromiseRaw<'env, T>>
where
    T: 'static + Send + ToNapiValue,
    F: 'static + Send + Future<Output = CoreResult<T>>,
{
    env.spawn_future_with_callback(async move { Ok(work.await) }, |env, result| {
        result.or_throw(env)
    })
}

/// Every code [`CoreError::code`] can give, for the test that checks `ts/errors.ts` maps each.
#[cfg_attr(test, allow(dead_code))]
#[napi(catch_unwind)]
pub fn native_error_codes() -> Vec<String> {
    CoreError::CODES.iter().map(|c| c.to_string()).collect()
}
