#include "engine/precision.h"

namespace fer {

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::fp32: return "fp32";
    case Precision::tf32: return "tf32";
    case Precision::bf16: return "bf16";
  }
  return "?";
}

std::optional<Precision> parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::fp32;
  if (name == "tf32") return Precision::tf32;
  if (name == "bf16") return Precision::bf16;
  return std::nullopt;
}

kernels::MathType math_type(Precision p) {
  return p == Precision::bf16 ? kernels::MathType::bf16 : kernels::MathType::f32;
}

}  // namespace fer
