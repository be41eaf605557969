#pragma once
// Lets one definition of small math (Philox, augmentation warps) compile for both host and device.
#if defined(__CUDACC__)
#define FER_HD __host__ __device__ __forceinline__
#else
#define FER_HD inline
#endif
