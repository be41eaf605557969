#include "engine/training/callbacks.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>

namespace fer::training {

Monitor::Monitor(std::string q, const std::string& mode, double delta)
    : quantity(std::move(q)), maximize(models::resolve_mode(quantity, mode) == "max"), min_delta(std::abs(delta)) {
  // Configs are checked when parsed (a UserError at the mode's line); reaching this is a caller's bug.
  if (mode != "auto" && mode != models::resolve_mode(quantity, "auto")) {
    throw std::invalid_argument("Monitor: mode \"" + mode + "\" contradicts the monitored quantity \"" + quantity + "\"");
  }
}

double Monitor::worst() const {
  return maximize ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
}

bool Monitor::improves(double current, double best) const {
  if (std::isnan(current)) return false;
  return maximize ? (current - min_delta > best) : (current + min_delta < best);
}

namespace {
std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.5g", v);
  return buf;
}
}  // namespace

BestCheckpoint::BestCheckpoint(const models::CheckpointSpec& spec) : monitor_(spec.monitor, spec.mode, 0.0) {
  state.best = monitor_.worst();
}

bool BestCheckpoint::on_epoch_end(const EpochRecord& logs) {
  const double current = logs.metric(monitor_.quantity);
  if (!monitor_.improves(current, state.best)) return false;
  state.best = current;
  state.best_epoch = logs.epoch;
  return true;
}

ReduceLROnPlateau::ReduceLROnPlateau(const models::ReduceLrSpec& spec)
    : spec_(spec), monitor_(spec.monitor, spec.mode, spec.min_delta) {
  state.best = monitor_.worst();
}

float ReduceLROnPlateau::on_epoch_end(const EpochRecord& logs, float lr, std::string* message) {
  if (!spec_.enabled) return lr;
  const double current = logs.metric(monitor_.quantity);
  const bool in_cooldown = state.cooldown_counter > 0;
  if (in_cooldown) {
    --state.cooldown_counter;
    state.wait = 0;
  }
  if (monitor_.improves(current, state.best)) {
    state.best = current;
    state.wait = 0;
  } else if (state.cooldown_counter <= 0) {
    ++state.wait;
    if (state.wait >= spec_.patience && lr > spec_.min_lr) {
      const double reduced = std::max(double(lr) * double(spec_.factor), double(spec_.min_lr));
      const float next = float(reduced);
      if (message) {
        *message = "ReduceLROnPlateau: " + monitor_.quantity + " did not improve for " +
                   std::to_string(state.wait) + " epochs; learning rate " + num(lr) + " -> " + num(next);
      }
      state.cooldown_counter = spec_.cooldown;
      state.wait = 0;
      return next;
    }
  }
  return lr;
}

EarlyStopping::EarlyStopping(const models::EarlyStoppingSpec& spec)
    : spec_(spec), monitor_(spec.monitor, spec.mode, spec.min_delta) {
  state.best = monitor_.worst();
}

bool EarlyStopping::decide(const EpochRecord& logs, bool* remember, bool* restore, std::string* message) {
  *remember = false;
  *restore = false;
  if (!spec_.enabled) return false;
  const double current = logs.metric(monitor_.quantity);
  if (monitor_.improves(current, state.best)) {
    state.best = current;
    state.best_epoch = logs.epoch;
    state.wait = 0;
    *remember = spec_.restore_best_weights;
    return false;
  }
  ++state.wait;
  if (state.wait < spec_.patience) return false;
  state.stopped_epoch = logs.epoch;
  std::string text = "EarlyStopping: " + monitor_.quantity + " did not improve for " + std::to_string(state.wait) +
                     " epochs (best " + num(state.best) + " at epoch " + std::to_string(state.best_epoch) +
                     "); stopping";
  if (spec_.restore_best_weights) {
    if (state.has_best_weights) {
      *restore = true;
      text += ", restoring the weights of epoch " + std::to_string(state.best_epoch);
    } else {
      text += " (no epoch improved, so there are no best weights to restore)";
    }
  }
  if (message) *message = text;
  return true;
}

}  // namespace fer::training
