// replaced by the CUDA kernel files
