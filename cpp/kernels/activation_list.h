// The one list of nnfast's activations. Everything that names them is generated from it: the
// Activation enum (GemmActivation in the GEMM, dense and conv2d kernels), the bindings' parsing
// and error messages, and _core.ACTIVATIONS / GEMM_ACTIVATIONS / CONV_ACTIVATIONS, which the
// Python layer, the references' coverage test and the bad-input specs read.
//
// X(name, where): where a producing kernel can apply the activation as it stores its result:
//   kFuseConv   conv2d's store and dense's GEMM epilogue (element-wise);
//   kFuseDense  dense's GEMM epilogue only (softmax: a pass over each row);
//   kFuseNone   its own kernel only (gelu: its backward needs the pre-activation, which dense's
//               backward does not keep; leaky_relu: it takes a slope).
// Adding an activation: one line here, its math (kernels/vmath.h), and its element-wise kernel
// (kernels/activations.*); a fusable one also gets its epi::activate case (gemm_epilogue.h) and
// its derivative in dense's backward.
#pragma once

namespace nnfast {

enum ActivationFuse : int { kFuseNone = 0, kFuseDense = 1, kFuseConv = 2 };

#define NNFAST_ACTIVATIONS(X) \
  X(linear, kFuseConv)        \
  X(relu, kFuseConv)          \
  X(sigmoid, kFuseConv)       \
  X(tanh, kFuseConv)          \
  X(softmax, kFuseDense)      \
  X(gelu, kFuseNone)          \
  X(leaky_relu, kFuseNone)

enum class Activation : int {
#define NNFAST_ACTIVATION_ENUM(name, where) name,
  NNFAST_ACTIVATIONS(NNFAST_ACTIVATION_ENUM)
#undef NNFAST_ACTIVATION_ENUM
};

struct ActivationInfo {
  const char* name;
  ActivationFuse fuse;
};

inline constexpr ActivationInfo kActivations[] = {
#define NNFAST_ACTIVATION_INFO(name, where) {#name, where},
    NNFAST_ACTIVATIONS(NNFAST_ACTIVATION_INFO)
#undef NNFAST_ACTIVATION_INFO
};

inline constexpr int kNumActivations = static_cast<int>(sizeof(kActivations) / sizeof(kActivations[0]));

// The activation applied as the GEMM stores C (and by conv2d, and in dense's backward).
using GemmActivation = Activation;

}  // namespace nnfast
