#pragma once
// The numeric mode of a run (`--precision`, `[train] precision`): a property of the plan, not of a
// layer. Graph::plan takes one Precision, checks the backend can do it, and every convolution and
// dense layer of that plan asks its backend for the op with the plan's operand type
// (kernels::MathType); every other op, every buffer the graph owns and the checkpoints stay FP32.
//
//   value  CPU backend                                  CUDA backend
//   fp32   FP32 everywhere (the CPU default)            FP32 everywhere, no tensor cores
//   tf32   refused: no TF32 on CPUs                     FP32 buffers, cuDNN/cuBLAS TF32 tensor-core
//                                                       math (sm_80+; the CUDA default)
//   bf16   convolutions and dense layers on bf16        convolutions (cuDNN) and dense layers
//          operands via oneDNN (AVX512-BF16 or AMX),    (cuBLAS GemmEx) on bf16 copies of their
//          FP32 accumulation and outputs; refused on    operands, FP32 accumulation; dense outputs
//          CPUs without either (unless FER_CPU_BF16=    FP32, convolution outputs rounded to bf16
//          emulate, the slow test path of bf16.h)       once (cuDNN's legacy bf16 API) and widened
//                                                       to FP32; refused before sm_80
//
// In bf16 the master weights, the optimizer's slots, gradients after each op, the loss and
// softmax, batch-norm statistics and every element-wise op stay FP32: only the operands of the
// matrix products are rounded to bf16 (at most 2^-8 relative), as PyTorch's autocast does for the same
// ops. A checkpoint holds the FP32 weights and loads into a run of any precision.
#include <optional>
#include <string>

#include "kernels/common/shapes.h"

namespace fer {

enum class Precision { fp32, tf32, bf16 };

const char* precision_name(Precision p);  // "fp32", "tf32", "bf16"
// Parses "fp32" / "tf32" / "bf16"; nullopt for anything else.
std::optional<Precision> parse_precision(const std::string& name);
// The operand type the matrix ops of a plan in precision p use (tf32 is FP32 buffers with the
// backend's tensor-core math, so f32).
kernels::MathType math_type(Precision p);

}  // namespace fer
