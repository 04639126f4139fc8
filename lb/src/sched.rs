//! `lb.scheduling`: the kernel scheduling policy of the balancer's own
//! threads (`skerry lb`, or `skerry run` without broker nodes).
//!
//! Where the balancer shares a core with the broker behind it, each write
//! the broker makes wakes a relay, and under `SCHED_OTHER` the woken relay
//! preempts the broker at once: a broker that writes every packet on its
//! own (Mosquitto 2.0) is interrupted once per packet, and the relay moves
//! a few packets per wake-up. Under `SCHED_BATCH` the woken relay waits
//! until the broker yields its core (it blocks, or its time slice ends) and
//! then relays everything that came meanwhile at once: far fewer wake-ups
//! and context switches. When no other task wants the core, a batch thread
//! runs as soon as it is woken, as any other.
//!
//! The policy is set on the thread that builds the balancer's runtime;
//! threads inherit it from their creator, so every worker and blocking
//! thread of that runtime runs under it. The nice value is kept.

use skerry_config::Scheduling;
use thread_priority::{
    set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue,
    ThreadSchedulePolicy,
};

/// Puts the calling thread (and the threads it creates from now on) under
/// `scheduling`, keeping its nice value. The balancer calls it for `batch`
/// only: under `normal` it keeps the policy it was started with (`chrt`,
/// systemd's `CPUSchedulingPolicy=`).
pub(crate) fn apply(scheduling: Scheduling) -> std::io::Result<()> {
    let policy = ThreadSchedulePolicy::Normal(match scheduling {
        Scheduling::Normal => NormalThreadSchedulePolicy::Other,
        Scheduling::Batch => NormalThreadSchedulePolicy::Batch,
    });
    let nice = rustix::process::getpriority_process(None)?;
    // thread-priority sets the nice value with the policy, from a 0..=99
    // priority it maps onto the nice range: pass the one that maps to the
    // current nice value (a lower one could not be restored unprivileged).
    let same_nice = (0..=u8::MAX)
        .filter_map(|p| ThreadPriorityValue::try_from(p).ok())
        .map(ThreadPriority::Crossplatform)
        .find(|p| p.to_posix(policy) == Ok(nice))
        .ok_or_else(|| std::io::Error::other(format!("nice value {nice} has no matching priority")))?;
    set_thread_priority_and_policy(thread_native_id(), same_nice, policy).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's policy as the kernel reports it (`policy`
    /// field of /proc/thread-self/stat: 0 SCHED_OTHER, 3 SCHED_BATCH) and
    /// its nice value.
    fn policy_and_nice() -> (u32, i32) {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Fields after the command name, which is in parentheses.
        let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
        (fields[38].parse().unwrap(), fields[16].parse().unwrap())
    }

    #[test]
    fn batch_is_set_inherited_by_new_threads_and_the_nice_value_kept() {
        std::thread::spawn(|| {
            rustix::process::setpriority_process(None, 3).unwrap();
            apply(Scheduling::Batch).unwrap();
            assert_eq!(policy_and_nice(), (3, 3));
            let child = std::thread::spawn(policy_and_nice).join().unwrap();
            assert_eq!(child, (3, 3), "a thread created afterwards inherits both");
            apply(Scheduling::Normal).unwrap();
            assert_eq!(policy_and_nice(), (0, 3));
        })
        .join()
        .unwrap();
    }
}
