#pragma once
// The whole CPU op set (kernels/cpu), one family per header.
#include "kernels/cpu/activation.h"
#include "kernels/cpu/augment.h"
#include "kernels/cpu/batch_norm.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/dense.h"
#include "kernels/cpu/dropout.h"
#include "kernels/cpu/gather.h"
#include "kernels/cpu/optimizers.h"
#include "kernels/cpu/pooling.h"
#include "kernels/cpu/softmax_xent.h"
