/** Naive references written independently of src/gpu, to check the cpu kernels themselves. */
export function naiveMatmul(a: Float32Array, b: Float32Array, m: number, n: number, k: number): Float32Array {
  const c = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let p = 0; p < k; p++) sum += a[i * k + p] * b[p * n + j];
      c[i * n + j] = sum;
    }
  }
  return c;
}

// input (N, C, H, W), weight (O, C, KH, KW) -> (N, O, OH, OW), by the definition of convolution
export function naiveConv2d(
  input: Float32Array,
  weight: Float32Array,
  bias: Float32Array | undefined,
  s: {
    batch: number;
    inChannels: number;
    height: number;
    width: number;
    outChannels: number;
    kernelHeight: number;
    kernelWidth: number;
  },
  stride: [number, number],
  padding: [number, number],
  dilation: [number, number] = [1, 1],
): Float32Array {
  const outHeight =
    Math.floor((s.height + 2 * padding[0] - dilation[0] * (s.kernelHeight - 1) - 1) / stride[0]) + 1;
  const outWidth =
    Math.floor((s.width + 2 * padding[1] - dilation[1] * (s.kernelWidth - 1) - 1) / stride[1]) + 1;
  const output = new Float32Array(s.batch * s.outChannels * outHeight * outWidth);
  for (let n = 0; n < s.batch; n++)
    for (let o = 0; o < s.outChannels; o++)
      for (let y = 0; y < outHeight; y++)
        for (let x = 0; x < outWidth; x++) {
          let sum = bias?.[o] ?? 0;
          for (let c = 0; c < s.inChannels; c++)
            for (let ky = 0; ky < s.kernelHeight; ky++)
              for (let kx = 0; kx < s.kernelWidth; kx++) {
                const iy = y * stride[0] - padding[0] + ky * dilation[0];
                const ix = x * stride[1] - padding[1] + kx * dilation[1];
                if (iy < 0 || iy >= s.height || ix < 0 || ix >= s.width) continue;
                sum +=
                  input[((n * s.inChannels + c) * s.height + iy) * s.width + ix] *
                  weight[((o * s.inChannels + c) * s.kernelHeight + ky) * s.kernelWidth + kx];
              }
          output[((n * s.outChannels + o) * outHeight + y) * outWidth + x] = sum;
        }
  return output;
}
