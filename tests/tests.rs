//! Skerry's one end-to-end test binary: real processes, real listeners on
//! ephemeral ports, real clients. One module per area.

mod appliance;
mod bench;
mod broker_connect;
mod broker_hibernate;
mod broker_hostile;
mod broker_interop;
mod broker_limits;
mod broker_listeners;
mod broker_protocol;
mod broker_rumqttc;
mod broker_sessions;
mod broker_subscriptions;
mod ca;
mod config;
mod lb_failure;
mod lb_inbound;
mod lb_limits;
mod lb_pass;
mod lb_reload;
mod lb_sched;
mod lb_sticky;
mod lb_tls;
mod lb_util;
mod run_reload;
mod store_crash;
mod store_restart;
