#include "engine/training/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <stdexcept>

#include <stb_image_write.h>

#include "engine/training/fileio.h"
#include "engine/training/metrics.h"
#include "models/summary.h"

namespace fer::training {

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string base64_encode(const std::string& bytes) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v = (uint32_t(p[i]) << 16) | (uint32_t(p[i + 1]) << 8) | p[i + 2];
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += t[v & 63];
  }
  if (i + 1 == bytes.size()) {
    const uint32_t v = uint32_t(p[i]) << 16;
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    const uint32_t v = (uint32_t(p[i]) << 16) | (uint32_t(p[i + 1]) << 8);
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

namespace {

void append_bytes(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data), size_t(size));
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// A "nice" tick step for a range (1, 2 or 5 times a power of ten).
double nice_step(double range, int target) {
  if (!(range > 0)) return 1.0;
  const double raw = range / target;
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  const double m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

struct Series {
  std::string name;
  std::string color;
  std::vector<double> y;
  bool dashed = false;
};

std::string line_chart(const std::string& title, const std::string& y_label, const std::vector<int>& x,
                       const std::vector<Series>& series, bool unit_range) {
  const double W = 520, H = 338, L = 62, R = 16, T = 34, B = 64;
  const double pw = W - L - R, ph = H - T - B;
  double lo = INFINITY, hi = -INFINITY;
  for (const Series& s : series)
    for (double v : s.y)
      if (std::isfinite(v)) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  if (unit_range) {
    lo = std::max(0.0, std::floor(lo * 10) / 10);
    hi = std::min(1.0, std::ceil(hi * 10) / 10);
  }
  if (hi - lo < 1e-9) {
    lo -= 0.05;
    hi += 0.05;
  }
  const double pad = (hi - lo) * 0.05;
  if (!unit_range) {
    lo = lo >= 0 ? std::max(0.0, lo - pad) : lo - pad;
    hi += pad;
  }
  const int x_min = x.empty() ? 1 : x.front(), x_max = x.empty() ? 1 : std::max(x.back(), x.front() + 1);
  auto X = [&](double e) { return L + (e - x_min) / double(x_max - x_min) * pw; };
  auto Y = [&](double v) { return T + (1.0 - (v - lo) / (hi - lo)) * ph; };
  std::string s = "<svg class=\"chart\" viewBox=\"0 0 " + fmt("%.0f", W) + " " + fmt("%.0f", H) +
                  "\" width=\"" + fmt("%.0f", W) + "\" height=\"" + fmt("%.0f", H) +
                  "\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"" + html_escape(title) + "\">\n";
  s += "<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n";
  s += "<text x=\"" + fmt("%.1f", L + pw / 2) + "\" y=\"20\" text-anchor=\"middle\" class=\"ct\">" + html_escape(title) + "</text>\n";
  // y grid and ticks
  const double ystep = nice_step(hi - lo, 5);
  for (double v = std::ceil(lo / ystep) * ystep; v <= hi + 1e-12; v += ystep) {
    const double y = Y(v);
    s += "<line x1=\"" + fmt("%.1f", L) + "\" x2=\"" + fmt("%.1f", L + pw) + "\" y1=\"" + fmt("%.1f", y) + "\" y2=\"" +
         fmt("%.1f", y) + "\" stroke=\"#e3e3e3\"/>\n";
    s += "<text x=\"" + fmt("%.1f", L - 6) + "\" y=\"" + fmt("%.1f", y + 4) + "\" text-anchor=\"end\" class=\"tk\">" +
         fmt(ystep < 0.01 ? "%.3f" : ystep < 0.1 ? "%.2f" : ystep < 1 ? "%.1f" : "%.0f", v) + "</text>\n";
  }
  // x ticks (epochs)
  const double xstep = std::max(1.0, nice_step(double(x_max - x_min), 8));
  for (double e = x_min; e <= x_max + 1e-9; e += xstep) {
    const double xx = X(e);
    s += "<line x1=\"" + fmt("%.1f", xx) + "\" x2=\"" + fmt("%.1f", xx) + "\" y1=\"" + fmt("%.1f", T + ph) + "\" y2=\"" +
         fmt("%.1f", T + ph + 4) + "\" stroke=\"#555\"/>\n";
    s += "<text x=\"" + fmt("%.1f", xx) + "\" y=\"" + fmt("%.1f", T + ph + 17) + "\" text-anchor=\"middle\" class=\"tk\">" +
         fmt("%.0f", e) + "</text>\n";
  }
  s += "<rect x=\"" + fmt("%.1f", L) + "\" y=\"" + fmt("%.1f", T) + "\" width=\"" + fmt("%.1f", pw) + "\" height=\"" +
       fmt("%.1f", ph) + "\" fill=\"none\" stroke=\"#555\"/>\n";
  s += "<text x=\"" + fmt("%.1f", L + pw / 2) + "\" y=\"" + fmt("%.1f", T + ph + 34) + "\" text-anchor=\"middle\" class=\"al\">epoch</text>\n";
  s += "<text transform=\"translate(16 " + fmt("%.1f", T + ph / 2) + ") rotate(-90)\" text-anchor=\"middle\" class=\"al\">" +
       html_escape(y_label) + "</text>\n";
  // series
  for (size_t k = 0; k < series.size(); ++k) {
    const Series& se = series[k];
    std::string pts;
    for (size_t i = 0; i < se.y.size() && i < x.size(); ++i) {
      if (!std::isfinite(se.y[i])) continue;
      pts += fmt("%.1f", X(x[i])) + "," + fmt("%.1f", Y(se.y[i])) + " ";
    }
    s += "<polyline fill=\"none\" stroke=\"" + se.color + "\" stroke-width=\"2\"" +
         (se.dashed ? " stroke-dasharray=\"6 3\"" : "") + " points=\"" + pts + "\"/>\n";
    for (size_t i = 0; i < se.y.size() && i < x.size(); ++i) {
      if (!std::isfinite(se.y[i])) continue;
      s += "<circle cx=\"" + fmt("%.1f", X(x[i])) + "\" cy=\"" + fmt("%.1f", Y(se.y[i])) + "\" r=\"2.5\" fill=\"" + se.color +
           "\"><title>" + html_escape(se.name) + " epoch " + std::to_string(x[i]) + ": " + fmt("%.4f", se.y[i]) +
           "</title></circle>\n";
    }
    // Legend: one row under the axis label, outside the plot so it never hides a curve.
    const double ly = H - 10, lx = L + pw / 2 - 110 + 130 * double(k);
    s += "<line x1=\"" + fmt("%.1f", lx) + "\" x2=\"" + fmt("%.1f", lx + 22) + "\" y1=\"" + fmt("%.1f", ly) + "\" y2=\"" +
         fmt("%.1f", ly) + "\" stroke=\"" + se.color + "\" stroke-width=\"2\"" + (se.dashed ? " stroke-dasharray=\"6 3\"" : "") +
         "/>\n";
    s += "<text x=\"" + fmt("%.1f", lx + 28) + "\" y=\"" + fmt("%.1f", ly + 4) + "\" class=\"tk\">" + html_escape(se.name) +
         "</text>\n";
  }
  s += "</svg>\n";
  return s;
}

std::string confusion_svg(const ConfusionMatrix& m, const std::vector<std::string>& names) {
  const int k = m.classes();
  const double cell = 64, L = 96, T = 40;
  const double W = L + cell * k + 20, H = T + cell * k + 56;
  std::string s = "<svg class=\"cm\" viewBox=\"0 0 " + fmt("%.0f", W) + " " + fmt("%.0f", H) + "\" width=\"" + fmt("%.0f", W) +
                  "\" height=\"" + fmt("%.0f", H) +
                  "\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"confusion matrix\">\n";
  s += "<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n";
  s += "<text x=\"" + fmt("%.1f", L + cell * k / 2) + "\" y=\"16\" text-anchor=\"middle\" class=\"al\">predicted</text>\n";
  for (int c = 0; c < k; ++c) {
    const std::string name = c < int(names.size()) ? names[size_t(c)] : std::to_string(c);
    s += "<text x=\"" + fmt("%.1f", L + cell * (c + 0.5)) + "\" y=\"" + fmt("%.1f", T - 8) +
         "\" text-anchor=\"middle\" class=\"tk\">" + html_escape(name) + "</text>\n";
    s += "<text x=\"" + fmt("%.1f", L - 8) + "\" y=\"" + fmt("%.1f", T + cell * (c + 0.5) + 4) +
         "\" text-anchor=\"end\" class=\"tk\">" + html_escape(name) + "</text>\n";
  }
  s += "<text transform=\"translate(14 " + fmt("%.1f", T + cell * k / 2) +
       ") rotate(-90)\" text-anchor=\"middle\" class=\"al\">true</text>\n";
  for (int t = 0; t < k; ++t) {
    const int64_t row = m.row_total(t);
    for (int p = 0; p < k; ++p) {
      const int64_t v = m.at(t, p);
      const double frac = row ? double(v) / double(row) : 0.0;
      // white -> deep blue by the row-normalised fraction (recall on the diagonal)
      const int r = int(255 - frac * (255 - 24)), g = int(255 - frac * (255 - 74)), b = int(255 - frac * (255 - 156));
      char color[16];
      std::snprintf(color, sizeof color, "#%02x%02x%02x", r, g, b);
      const double x = L + cell * p, y = T + cell * t;
      s += "<rect x=\"" + fmt("%.1f", x) + "\" y=\"" + fmt("%.1f", y) + "\" width=\"" + fmt("%.1f", cell) + "\" height=\"" +
           fmt("%.1f", cell) + "\" fill=\"" + color + "\" stroke=\"#fff\"><title>true " +
           html_escape(t < int(names.size()) ? names[size_t(t)] : "") + ", predicted " +
           html_escape(p < int(names.size()) ? names[size_t(p)] : "") + ": " + std::to_string(v) + "</title></rect>\n";
      const char* ink = frac > 0.5 ? "#fff" : "#222";
      s += "<text x=\"" + fmt("%.1f", x + cell / 2) + "\" y=\"" + fmt("%.1f", y + cell / 2 - 2) +
           "\" text-anchor=\"middle\" class=\"cv\" fill=\"" + ink + "\">" + std::to_string(v) + "</text>\n";
      s += "<text x=\"" + fmt("%.1f", x + cell / 2) + "\" y=\"" + fmt("%.1f", y + cell / 2 + 13) +
           "\" text-anchor=\"middle\" class=\"cp\" fill=\"" + ink + "\">" + fmt("%.0f%%", frac * 100) + "</text>\n";
    }
  }
  s += "<text x=\"" + fmt("%.1f", L) + "\" y=\"" + fmt("%.1f", H - 16) +
       "\" class=\"tk\">cell colour: share of the true class's rows (row-normalised)</text>\n";
  s += "</svg>\n";
  return s;
}

std::string row(const std::string& k, const std::string& v) {
  return "<tr><th>" + html_escape(k) + "</th><td>" + v + "</td></tr>\n";
}

}  // namespace

std::string encode_png_gray(const uint8_t* pixels, int height, int width) {
  std::string out;
  if (!stbi_write_png_to_func(append_bytes, &out, width, height, 1, pixels, width)) {
    throw std::runtime_error("PNG encoding failed");
  }
  return out;
}

namespace {

// The page up to <body>: title and the style sheet.
std::string head_html(const ReportInput& in) {
  std::string o;
  o += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  o += "<title>fer_gpu report: " + html_escape(in.model_name) + "</title>\n";
  o += R"(<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1120px;color:#222;padding:0 16px}
h1{font-size:1.5em;margin-bottom:4px}h2{font-size:1.15em;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin-top:0}.banner{background:#fff4d6;border:1px solid #e0b84c;padding:8px 12px;border-radius:4px}
table{border-collapse:collapse;font-size:0.92em}th,td{padding:3px 10px;border-bottom:1px solid #eee;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}table.kv th{color:#555;font-weight:600;width:220px}
.charts{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}.ct{font-size:14px;font-weight:600}.tk{font-size:11px;fill:#444}
.al{font-size:12px;fill:#333}.cv{font-size:13px;font-weight:600}.cp{font-size:10px}
.faces{display:flex;flex-wrap:wrap;gap:10px}.face{width:104px;font-size:11px;text-align:center}
.face img{width:96px;height:96px;image-rendering:pixelated;border:1px solid #ccc}
.face .t{color:#1a7f37}.face .p{color:#c62828}
pre{background:#f6f8fa;padding:10px;overflow:auto;font-size:0.85em}
</style>
</head>
<body>
)";
  return o;
}

// The heading, and the banner of a run on the bundled sample.
std::string title_html(const ReportInput& in) {
  std::string o;
  o += "<h1>" + html_escape(in.model_name) + " &mdash; training report</h1>\n";
  o += "<p class=\"sub\">" + html_escape(in.status) + " &middot; " + html_escape(in.created) + " &middot; run directory <code>" +
       html_escape(in.run_dir) + "</code></p>\n";
  if (in.sample_data) {
    o += "<p class=\"banner\">Trained on the bundled <b>sample</b> (" + std::to_string(in.train_rows + in.val_rows) +
         " faces), not on FER2013: the numbers below only show that the pipeline works. Download fer2013.csv from "
         "Kaggle and pass <code>--data</code> for real training.</p>\n";
  }
  return o;
}

// The run at a glance: model, data, recipe, final and best epochs.
std::string summary_html(const ReportInput& in, const History& h) {
  std::string o;
  o += "<h2>Summary</h2>\n<table class=\"kv\">\n";
  o += row("model", html_escape(in.model_name) + " (config <code>" + html_escape(in.config_path) + "</code>)");
  o += row("parameters", models::with_thousands(in.trainable_params) + " trainable, " +
                             models::with_thousands(in.non_trainable_params) + " non-trainable");
  o += row("data", "<code>" + html_escape(in.data_path) + "</code>: " + std::to_string(in.train_rows) + " training, " +
                       std::to_string(in.val_rows) + " validation images");
  o += row("device", html_escape(in.device));
  o += row("optimizer", html_escape(in.optimizer));
  o += row("augmentation", html_escape(in.augmentation));
  o += row("batch size / seed", std::to_string(in.batch_size) + " / " + std::to_string(in.seed));
  o += row("epochs", std::to_string(h.epochs.size()) + " of " + std::to_string(in.target_epochs));
  if (!h.epochs.empty()) {
    const EpochRecord& last = h.epochs.back();
    o += row("final epoch", "loss " + fmt("%.4f", last.loss) + ", accuracy " + fmt("%.4f", last.accuracy) + ", val_loss " +
                                fmt("%.4f", last.val_loss) + ", val_accuracy " + fmt("%.4f", last.val_accuracy));
    auto best_val = std::max_element(h.epochs.begin(), h.epochs.end(), [](const EpochRecord& a, const EpochRecord& b) {
      return a.val_accuracy < b.val_accuracy;
    });
    o += row("best val_accuracy", fmt("%.4f", best_val->val_accuracy) + " (epoch " + std::to_string(best_val->epoch) + ")");
  }
  if (in.best.best_epoch > 0) {
    o += row("best.ckpt", "epoch " + std::to_string(in.best.best_epoch) + ", monitor " + html_escape(in.monitor) + " = " +
                              fmt("%.4f", in.best.best));
  }
  o += "</table>\n";
  return o;
}

// Accuracy and loss per epoch, training and validation.
std::string curves_html(const History& h) {
  std::string o;
  o += "<h2>Training curves</h2>\n<div class=\"charts\">\n";
  std::vector<int> x;
  std::vector<double> acc, vacc, loss, vloss;
  for (const EpochRecord& e : h.epochs) {
    x.push_back(e.epoch);
    acc.push_back(e.accuracy);
    vacc.push_back(e.val_accuracy);
    loss.push_back(e.loss);
    vloss.push_back(e.val_loss);
  }
  if (x.empty()) {
    o += "<p>No epoch has completed yet.</p>\n";
  } else {
    o += line_chart("model accuracy", "accuracy", x,
                    {{"train", "#1f77b4", acc, false}, {"validation", "#ff7f0e", vacc, true}}, true);
    o += line_chart("model loss", "loss", x, {{"train", "#1f77b4", loss, false}, {"validation", "#ff7f0e", vloss, true}},
                    false);
  }
  o += "</div>\n";
  return o;
}

// The most confident mistakes of the validation predictions, as the faces themselves (at most
// in.max_faces; none without in.data).
std::string misclassified_html(const ReportInput& in, const Predictions* pred, int k) {
  std::string o;
  std::vector<size_t> wrong;
  for (size_t i = 0; i < pred->rows.size(); ++i)
    if (pred->truth[i] >= 0 && pred->predicted[i] != pred->truth[i]) wrong.push_back(i);
  std::stable_sort(wrong.begin(), wrong.end(),
                   [&](size_t a, size_t b) { return pred->confidence[a] > pred->confidence[b]; });
  o += "<h2>Misclassified validation faces (" + std::to_string(wrong.size()) + " of " +
       std::to_string(pred->rows.size()) + "; most confident first)</h2>\n<div class=\"faces\">\n";
  if (in.data) {
    int shown = 0;
    for (size_t i : wrong) {
      if (shown >= in.max_faces) break;
      const int64_t r = pred->rows[i];
      if (r < 0 || r >= in.data->size()) continue;
      const std::string png = encode_png_gray(in.data->image(r), in.data->height, in.data->width);
      const auto name = [&](int c) { return c >= 0 && c < k ? in.class_names[size_t(c)] : std::string("?"); };
      o += "<div class=\"face\"><img alt=\"validation row " + std::to_string(r) + "\" src=\"data:image/png;base64," +
           base64_encode(png) + "\"><br><span class=\"t\">true " + html_escape(name(pred->truth[i])) +
           "</span><br><span class=\"p\">pred " + html_escape(name(pred->predicted[i])) + " " +
           fmt("%.2f", pred->confidence[i]) + "</span></div>\n";
      ++shown;
    }
  }
  o += "</div>\n";
  return o;
}

// The validation confusion matrix with per-class scores, then the misclassified faces.
std::string validation_html(const ReportInput& in) {
  std::string o;
  const Predictions* pred = in.predictions;
  const int k = int(in.class_names.size());
  if (pred && !pred->rows.empty() && k > 0) {
    ConfusionMatrix cm(k);
    for (size_t i = 0; i < pred->rows.size(); ++i) cm.add(pred->truth[i], pred->predicted[i]);
    o += "<h2>Validation confusion matrix (epoch " + std::to_string(pred->epoch) + ", accuracy " +
         fmt("%.4f", cm.accuracy()) + ")</h2>\n";
    o += "<div class=\"charts\">\n" + confusion_svg(cm, in.class_names);
    o += "<table><tr><th>class</th><th class=\"n\">precision</th><th class=\"n\">recall</th><th class=\"n\">F1</th><th "
         "class=\"n\">support</th></tr>\n";
    const auto scores = cm.scores();
    for (int c = 0; c < k; ++c) {
      o += "<tr><td>" + html_escape(in.class_names[size_t(c)]) + "</td><td class=\"n\">" + fmt("%.3f", scores[size_t(c)].precision) +
           "</td><td class=\"n\">" + fmt("%.3f", scores[size_t(c)].recall) + "</td><td class=\"n\">" +
           fmt("%.3f", scores[size_t(c)].f1) + "</td><td class=\"n\">" + std::to_string(scores[size_t(c)].support) + "</td></tr>\n";
    }
    const ClassScores macro = cm.macro_average(), weighted = cm.weighted_average();
    o += "<tr><th>macro avg</th><td class=\"n\">" + fmt("%.3f", macro.precision) + "</td><td class=\"n\">" +
         fmt("%.3f", macro.recall) + "</td><td class=\"n\">" + fmt("%.3f", macro.f1) + "</td><td class=\"n\">" +
         std::to_string(macro.support) + "</td></tr>\n";
    o += "<tr><th>weighted avg</th><td class=\"n\">" + fmt("%.3f", weighted.precision) + "</td><td class=\"n\">" +
         fmt("%.3f", weighted.recall) + "</td><td class=\"n\">" + fmt("%.3f", weighted.f1) + "</td><td class=\"n\">" +
         std::to_string(weighted.support) + "</td></tr>\n</table>\n</div>\n";
    o += misclassified_html(in, pred, k);
  } else {
    o += "<h2>Validation confusion matrix</h2>\n<p>No validation pass has completed yet.</p>\n";
  }
  return o;
}

// Wall time of the run and where it went.
std::string timing_html(const ReportInput& in, const History& h) {
  std::string o;
  o += "<h2>Timing</h2>\n<table class=\"kv\">\n";
  double train_s = 0, val_s = 0, epoch_s = 0;
  int64_t images = 0;
  for (const EpochRecord& e : h.epochs) {
    train_s += e.train_seconds;
    val_s += e.val_seconds;
    epoch_s += e.seconds;
    images += e.train_images;
  }
  o += row("wall time of this run", html_escape(format_duration(in.total_seconds)));
  if (!h.epochs.empty()) {
    o += row("epochs (sum)", html_escape(format_duration(epoch_s)) + " (" + fmt("%.2f", epoch_s / double(h.epochs.size())) +
                                 " s per epoch)");
    o += row("training steps", html_escape(format_duration(train_s)) + ", " +
                                   fmt("%.0f", train_s > 0 ? double(images) / train_s : 0.0) + " images/s");
    o += row("validation passes", html_escape(format_duration(val_s)));
  }
  o += "</table>\n";
  return o;
}

// Every epoch's numbers, as history.csv holds them.
std::string history_html(const History& h) {
  std::string o;
  o += "<h2>History</h2>\n<table><tr><th class=\"n\">epoch</th><th class=\"n\">loss</th><th class=\"n\">accuracy</th>"
       "<th class=\"n\">val_loss</th><th class=\"n\">val_accuracy</th><th class=\"n\">lr</th><th class=\"n\">seconds</th>"
       "<th class=\"n\">images/s</th></tr>\n";
  for (const EpochRecord& e : h.epochs) {
    o += "<tr><td class=\"n\">" + std::to_string(e.epoch) + "</td><td class=\"n\">" + fmt("%.4f", e.loss) +
         "</td><td class=\"n\">" + fmt("%.4f", e.accuracy) + "</td><td class=\"n\">" + fmt("%.4f", e.val_loss) +
         "</td><td class=\"n\">" + fmt("%.4f", e.val_accuracy) + "</td><td class=\"n\">" + fmt("%.3g", e.lr) +
         "</td><td class=\"n\">" + fmt("%.1f", e.seconds) + "</td><td class=\"n\">" + fmt("%.0f", e.images_per_second()) +
         "</td></tr>\n";
  }
  o += "</table>\n";
  return o;
}

// The Keras-style summary and the resolved config, when known.
std::string model_html(const ReportInput& in) {
  std::string o;
  if (!in.model_summary.empty()) o += "<h2>Model</h2>\n<pre>" + html_escape(in.model_summary) + "</pre>\n";
  if (!in.config_text.empty()) {
    o += "<details><summary>Resolved config</summary>\n<pre>" + html_escape(in.config_text) + "</pre>\n</details>\n";
  }
  return o;
}

}  // namespace

std::string render_report(const ReportInput& in) {
  static const History empty_history;
  const History& h = in.history ? *in.history : empty_history;
  std::string o;
  o.reserve(1 << 16);
  o += head_html(in);
  o += title_html(in);
  o += summary_html(in, h);
  o += curves_html(h);
  o += validation_html(in);
  o += timing_html(in, h);
  o += history_html(h);
  o += model_html(in);
  o += "<p class=\"sub\">Written by fer_gpu train.</p>\n</body>\n</html>\n";
  return o;
}

}  // namespace fer::training
