//! One request's answer: the frame read once, what needs no device done
//! outside its lock (a `Health` probe, a `SignApproved`'s recoveries, a
//! shared-marks claim, the signature, the quote, the commit), the device
//! asked for the rest.

use std::sync::atomic::Ordering;
use std::time::Instant;

use tee_core::device::{Incoming, Step};
use tee_core::frame::FrameError;
use tee_core::protocol::{Command, DeviceError, Health};

use super::{Ctx, End, Served};

/// Answers one frame into `out`. The device lock is held for the device's
/// own work only: a quote is made between two holds, never under one.
pub(super) fn answer<B: Served, const S: usize>(
    ctx: &Ctx<B, S>,
    frame: Result<&[u8], FrameError>,
    tx: &mut [u8],
    out: &mut Vec<u8>,
) -> Result<(), End> {
    // A poisoned lock means a thread panicked inside the device: its
    // in-memory state is suspect, so nobody is served from it again.
    if let (Err(_), Some(m)) = (&frame, &ctx.metrics) {
        m.bad_frames.fetch_add(1, Ordering::Relaxed);
    }
    let lock = || ctx.device.lock().map_err(|_| End::DeviceUnavailable);
    // Where marks are shared, a signature's is claimed in the database
    // before the device commits it, outside the lock (many at once): the
    // device is asked in a statement of its own, so its guard is gone
    // before the database is.
    // The frame is read once: a `Sign` is decoded and hashed here, outside
    // the lock, and the claim and the device read the same decoded request.
    let mut incoming = Incoming::read(frame);
    // A `SignApproved`'s approvals are recovered here, outside the lock
    // (each is an elliptic-curve operation), for the key its slot holds
    // now; the device counts them only if that key still signs.
    if let Incoming::Sign(s) = &mut incoming
        && s.has_approvals()
    {
        // The guard goes at the end of this statement, before the recovery.
        let signer = lock()?.approvals_signer(s);
        if let Some(signer) = signer {
            s.recover_approvals(&signer);
        }
    }
    let command = match &incoming {
        Incoming::Refused(h, _) | Incoming::Other(h, _) => h.command,
        Incoming::Sign(_) => tee_core::protocol::Sign::CODE,
    };
    // `Health` is the service's, not the device's: probed here, without
    // the device's lock (a malformed one goes to the device, which says so).
    if let (Incoming::Other(h, body), Some(probe)) = (&incoming, &ctx.prober)
        && h.command == Health::CODE
        && tee_core::codec::decode::<Health>(body).is_ok()
    {
        let r: Result<_, DeviceError> = Ok(probe());
        let len = tee_core::frame::encode(h, &r, tx).map_or(0, |f| f.len());
        out.extend_from_slice(tx.get(..len).unwrap_or(&[]));
        if let Some(m) = &ctx.metrics {
            m.response(Health::CODE, Ok(()));
        }
        return Ok(());
    }
    let claim = match (&ctx.claims, &incoming) {
        (Some(_), Incoming::Sign(s)) => lock()?.sign_claim(s),
        _ => None,
    };
    let _held = ctx.claims.as_ref().zip(claim).map(|(claims, c)| {
        let started = Instant::now();
        let held = claims.claim(c);
        if let Some(m) = &ctx.metrics {
            m.claimed(held.outcome_name(), started.elapsed());
        }
        held
    });
    let step = lock()?.begin_incoming(incoming, tx);
    let reply = match step {
        Step::Done(reply) => reply,
        // The signature is made without the device: on every core at once.
        Step::Sign(pending) => pending.finish(tx),
        Step::Quote(pending) => match &ctx.quoter {
            None => lock()?.finish_quote_with_backend(pending, tx),
            Some(quoter) => {
                let made = quoter(pending.report_data());
                let mut device = lock()?;
                match made {
                    Ok(evidence) => {
                        let quote = evidence.quote.clone();
                        device.backend_mut().keep_quote_evidence(evidence);
                        device.finish_quote(pending, Ok(&quote), tx)
                    }
                    Err(e) => device.finish_quote(pending, Err(e), tx),
                }
            }
        },
    };
    // The reply leaves only once what it depends on (a signature's mark) is
    // durable: one sync, outside the lock, for every reply waiting.
    let waited = Instant::now();
    let committed = match (reply.ticket(), &ctx.committer) {
        (None, _) => Ok(()),
        (Some(t), Some(commit)) => commit(t),
        (Some(t), None) => lock()?.backend_mut().make_durable(t),
    };
    let ticket = reply.ticket().is_some();
    let len = reply.release(committed, tx);
    let frame = tx.get(..len).unwrap_or(&[]);
    if let Some(m) = &ctx.metrics {
        if ticket {
            m.commit.observe(waited.elapsed());
        }
        m.count_frame(command, frame);
    }
    out.extend_from_slice(frame);
    Ok(())
}
