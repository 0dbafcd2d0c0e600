//! A reference of the Kubernetes Horizontal Pod Autoscaler on an external
//! queue metric, and of KEDA feeding it, for comparison with steward.
//!
//! The HPA part follows the controller's algorithm (`replica_calculator.go`
//! and `horizontal.go` of `pkg/controller/podautoscaler`) with the default
//! `behavior`:
//! - the metric is an `AverageValue` target per pod: with `usage` the
//!   metric's total and `current` the replicas, the usage ratio is
//!   `usage / (target × current)`; within `tolerance` (0.1) of 1 the
//!   recommendation is `current`, else `ceil(usage / target)`;
//! - scale-up stabilization window 0; scale-down stabilization window
//!   300 s: the recommendation is never below the highest recommendation
//!   made within the window;
//! - scale-up rate: the larger of +100 % and +4 pods per 15 s, counted
//!   from the replicas at the start of the period (scale events of the
//!   last 15 s are remembered); scale-down rate: −100 % per 15 s;
//! - it syncs every 15 s; with 0 replicas it does nothing (scaling is
//!   disabled at zero).
//!
//! KEDA adds its operator loop: every `pollingInterval` (30 s) it reads
//! the scaler; at 0 replicas a metric at or above the activation value
//! (1) scales to 1, and after `cooldownPeriod` (300 s) without activity
//! the deployment goes back to 0 (when the minimum allows it). The HPA
//! then reads the value the scaler last returned.
//!
//! The metric is the queue length as a queue-length scaler reports it:
//! items waiting plus items in flight (the default of KEDA's SQS scaler;
//! KEDA's default target for queue scalers is 5 per pod).

use super::engine::{Controller, Observation};

/// The HPA's and KEDA's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaConfig {
    /// The `AverageValue` target: queue items per pod.
    pub target: f64,
    /// The band around the target inside which nothing changes.
    pub tolerance: f64,
    /// Seconds between syncs.
    pub sync: f64,
    /// The scale-down stabilization window, in seconds.
    pub down_window: f64,
    /// The scale-up policies' period, in seconds.
    pub up_period: f64,
    /// The scale-up percent policy.
    pub up_percent: f64,
    /// The scale-up pods policy.
    pub up_pods: u32,
    /// `minReplicas`.
    pub min: u32,
    /// `maxReplicas`.
    pub max: u32,
    /// KEDA in front (`None`: the HPA reads the metric itself).
    pub keda: Option<KedaConfig>,
}

/// KEDA's operator settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KedaConfig {
    /// `pollingInterval`, in seconds.
    pub polling: f64,
    /// `cooldownPeriod`, in seconds.
    pub cooldown: f64,
    /// The activation value: at or above it, a deployment at 0 wakes.
    pub activation: f64,
}

impl HpaConfig {
    /// The HPA with Kubernetes' defaults and a target per pod.
    pub fn hpa(target: f64, min: u32, max: u32) -> Self {
        Self {
            target,
            tolerance: 0.1,
            sync: 15.0,
            down_window: 300.0,
            up_period: 15.0,
            up_percent: 100.0,
            up_pods: 4,
            // The HPA's minReplicas is at least 1.
            min: min.max(1),
            max,
            keda: None,
        }
    }

    /// KEDA's defaults in front of the HPA (`minReplicaCount` may be 0).
    pub fn keda(target: f64, min: u32, max: u32) -> Self {
        Self { min, keda: Some(KedaConfig { polling: 30.0, cooldown: 300.0, activation: 1.0 }), ..Self::hpa(target, min, max) }
    }
}

/// The HPA's memory: recommendations and scale events, as the controller keeps them.
#[derive(Debug, Clone)]
pub struct Hpa {
    cfg: HpaConfig,
    /// (time, recommendation), the unstabilized ones.
    recommendations: Vec<(f64, u32)>,
    /// (time, replicas added (+) or removed (−)).
    events: Vec<(f64, i64)>,
    /// KEDA: the last polled value, when it was polled, and the last time it was active.
    polled: Option<(f64, f64)>,
    last_active: f64,
}

impl Hpa {
    /// A controller with these settings.
    pub fn new(cfg: HpaConfig) -> Self {
        Self { cfg, recommendations: Vec::new(), events: Vec::new(), polled: None, last_active: 0.0 }
    }

    /// One HPA sync at `now` with `current` replicas and a metric total of
    /// `usage`: the replicas it sets. Pure apart from the controller's own
    /// memory, so the documented examples can be checked one by one.
    pub fn sync(&mut self, now: f64, current: u32, usage: f64) -> u32 {
        let c = &self.cfg;
        if current == 0 {
            // "scaling is disabled since the replica count of the target is zero".
            return 0;
        }
        // replica_calculator: GetExternalPerPodMetricReplicas.
        let ratio = usage / (c.target * f64::from(current));
        let proposed = if (1.0 - ratio).abs() > c.tolerance { ceil_u32(usage / c.target) } else { current };
        // Bounds come first (minReplicas/maxReplicas), then behaviors.
        let proposed = proposed.clamp(c.min.max(1), c.max.max(1));
        // reconcileAutoscaler seeds a new HPA's window with the current replicas.
        if self.recommendations.is_empty() {
            self.recommendations.push((now, current));
        }
        // stabilizeRecommendationWithBehaviors: up window 0, down window 300 s.
        self.recommendations.retain(|(t, _)| now - t < c.down_window.max(c.up_period) + c.sync);
        let down = self.recommendations.iter().filter(|(t, _)| *t > now - c.down_window).map(|(_, r)| *r).fold(proposed, u32::max);
        let up = proposed;
        let mut stabilized = current.max(up);
        stabilized = stabilized.min(down);
        self.recommendations.push((now, proposed));
        // convertDesiredReplicasWithBehaviorRate.
        let mut desired = stabilized;
        if desired > current {
            let in_period = |up: bool| -> i64 {
                self.events.iter().filter(|(t, d)| *t > now - c.up_period && (*d > 0) == up).map(|(_, d)| d.abs()).sum()
            };
            let start = i64::from(current) - in_period(true) + in_period(false);
            let by_pods = start + i64::from(c.up_pods);
            let by_percent = (start as f64 * (1.0 + c.up_percent / 100.0)).ceil() as i64;
            let limit = by_pods.max(by_percent).max(i64::from(current));
            let limit = u32::try_from(limit.min(i64::from(c.max))).unwrap_or(c.max);
            desired = desired.min(limit);
        }
        // The default scale-down policy (100 % per 15 s) never limits.
        if desired != current {
            self.events.push((now, i64::from(desired) - i64::from(current)));
        }
        self.events.retain(|(t, _)| now - t < c.up_period + c.sync);
        desired
    }
}

fn ceil_u32(x: f64) -> u32 {
    if x.is_finite() && x > 0.0 {
        (x - 1e-9).ceil().min(f64::from(u32::MAX)) as u32
    } else {
        0
    }
}

impl Controller for Hpa {
    fn name(&self) -> String {
        if self.cfg.keda.is_some() { "keda" } else { "hpa" }.into()
    }

    fn period(&self) -> f64 {
        match self.cfg.keda {
            // The engine asks at the finer of the two cadences; each part
            // runs on its own schedule inside.
            Some(k) => gcd_period(self.cfg.sync, k.polling),
            None => self.cfg.sync,
        }
    }

    fn decide(&mut self, obs: &Observation<'_>) -> Option<u32> {
        let usage = (obs.queued + obs.in_service.len() as u64) as f64;
        let current = obs.provisioned;
        let Some(k) = self.cfg.keda else {
            return Some(self.sync(obs.now, current, usage));
        };
        let on = |every: f64| (obs.now / every - (obs.now / every).round()).abs() < 1e-6;
        let mut replicas = current;
        if on(k.polling) || self.polled.is_none() {
            self.polled = Some((usage, obs.now));
            if usage >= k.activation {
                self.last_active = obs.now;
                if replicas == 0 {
                    // The operator activates the deployment.
                    replicas = self.cfg.min.max(1);
                }
            } else if replicas > 0 && self.cfg.min == 0 && obs.now - self.last_active >= k.cooldown {
                return Some(0);
            }
        }
        if on(self.cfg.sync) {
            let value = self.polled.map_or(usage, |(v, _)| v);
            replicas = self.sync(obs.now, replicas, value);
        }
        Some(replicas)
    }
}

/// The largest period both cadences are multiples of (to a millisecond).
fn gcd_period(a: f64, b: f64) -> f64 {
    let (mut x, mut y) = ((a * 1000.0).round() as u64, (b * 1000.0).round() as u64);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    (x.max(1)) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hpa() -> Hpa {
        Hpa::new(HpaConfig::hpa(10.0, 1, 100))
    }

    #[test]
    fn at_twice_the_target_three_replicas_become_six() {
        // Kubernetes' documented example: desired = ceil(3 × 200 / 100) = 6.
        assert_eq!(hpa().sync(0.0, 3, 3.0 * 10.0 * 2.0), 6);
    }

    #[test]
    fn within_tolerance_nothing_changes() {
        let mut h = hpa();
        // 3 replicas at 108 % of target: ceil(3.24) would be 4, but 8 % is inside the 10 % band.
        assert_eq!(h.sync(0.0, 3, 32.4), 3);
        // And at 92 %: no scale-down either.
        assert_eq!(h.sync(15.0, 3, 27.6), 3);
        // Just outside the band it acts.
        assert_eq!(h.sync(30.0, 3, 33.3), 4);
    }

    #[test]
    fn the_scale_down_window_holds_the_highest_recommendation() {
        let mut h = hpa();
        assert_eq!(h.sync(0.0, 8, 80.0), 8);
        // The load falls: recommendations 4, then 2; the 8 of t=0 holds.
        assert_eq!(h.sync(15.0, 8, 40.0), 8);
        assert_eq!(h.sync(150.0, 8, 20.0), 8);
        // At 300 s the 8 has left the window; the 4 of t=15 still holds.
        assert_eq!(h.sync(300.0, 8, 20.0), 4);
        // Past t=315 only recommendations of 2 remain.
        assert_eq!(h.sync(450.0, 4, 20.0), 2);
    }

    #[test]
    fn the_rate_limit_caps_a_jump() {
        let mut h = hpa();
        // From 1 replica, a metric asking for 100: at most max(2 × 1, 1 + 4) = 5.
        assert_eq!(h.sync(0.0, 1, 1000.0), 5);
        // Within the same 15 s, the period started at 1: still 5.
        assert_eq!(h.sync(10.0, 5, 1000.0), 5);
        // A new period starts from 5: max(10, 9) = 10.
        assert_eq!(h.sync(30.0, 5, 1000.0), 10);
        // And from 10: max(20, 14) = 20.
        assert_eq!(h.sync(45.0, 10, 1000.0), 20);
    }

    #[test]
    fn bounds_apply_and_zero_replicas_disable_scaling() {
        let mut h = Hpa::new(HpaConfig::hpa(10.0, 2, 6));
        assert_eq!(h.sync(0.0, 4, 0.0), 4, "a new HPA's window starts with the current replicas");
        assert_eq!(h.sync(400.0, 4, 0.0), 2);
        assert_eq!(h.sync(415.0, 6, 1000.0), 6);
        assert_eq!(h.sync(430.0, 0, 1000.0), 0);
    }

    #[test]
    fn keda_wakes_at_activation_and_sleeps_after_the_cooldown() {
        let mut k = Hpa::new(HpaConfig::keda(5.0, 0, 20));
        let obs = |now: f64, queued: u64, provisioned: u32| Observation {
            now,
            queued,
            in_service: &[],
            completed: 0,
            arrived: queued,
            ready: provisioned,
            provisioned,
            free_at: &[],
        };
        assert_eq!(k.period(), 15.0);
        assert_eq!(k.decide(&obs(0.0, 0, 0)), Some(0));
        // At a poll, one item wakes it; the HPA then sizes for 1 item: 1 pod.
        assert_eq!(k.decide(&obs(30.0, 1, 0)), Some(1));
        // 300 s after the last activity it goes back to zero (at a poll).
        assert_eq!(k.decide(&obs(60.0, 0, 1)), Some(1));
        assert_eq!(k.decide(&obs(300.0, 0, 1)), Some(1));
        assert_eq!(k.decide(&obs(330.0, 0, 1)), Some(0));
    }
}
