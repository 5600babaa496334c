#include "runtime/cpu.h"

#include <atomic>
#include <stdexcept>

#if defined(NNFAST_X86)
#if defined(_MSC_VER)
#include <immintrin.h>
#include <intrin.h>
#else
#include <cpuid.h>
#endif
#endif

namespace nnfast {
namespace runtime {
namespace {

std::atomic<int> g_active{static_cast<int>(Isa::baseline)};

#if defined(NNFAST_X86)
struct CpuidRegs {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
};

CpuidRegs cpuid(unsigned leaf, unsigned subleaf) {
  CpuidRegs r;
#if defined(_MSC_VER)
  int out[4];
  __cpuidex(out, static_cast<int>(leaf), static_cast<int>(subleaf));
  r.eax = static_cast<unsigned>(out[0]);
  r.ebx = static_cast<unsigned>(out[1]);
  r.ecx = static_cast<unsigned>(out[2]);
  r.edx = static_cast<unsigned>(out[3]);
#else
  __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
#endif
  return r;
}

unsigned long long xgetbv0() {
#if defined(_MSC_VER)
  return _xgetbv(0);
#else
  unsigned eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
#endif
}

struct Features {
  bool v2 = false, avx2 = false, avx512 = false;
};

Features detect() {
  Features f;
  const unsigned max_leaf = cpuid(0, 0).eax;
  if (max_leaf < 1) return f;
  const CpuidRegs l1 = cpuid(1, 0);
  const bool sse42 = (l1.ecx >> 20) & 1, popcnt = (l1.ecx >> 23) & 1, ssse3 = (l1.ecx >> 9) & 1;
  const bool sse41 = (l1.ecx >> 19) & 1;
  f.v2 = sse42 && popcnt && ssse3 && sse41;
  const bool osxsave = (l1.ecx >> 27) & 1, avx = (l1.ecx >> 28) & 1, fma = (l1.ecx >> 12) & 1;
  const bool f16c = (l1.ecx >> 29) & 1;
  if (!osxsave || max_leaf < 7) return f;
  const unsigned long long xcr0 = xgetbv0();
  // NOTE: the OS must save the YMM (bits 1-2) and, for AVX-512, the opmask/ZMM state (bits 5-7).
  const bool os_ymm = (xcr0 & 0x6) == 0x6;
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;
  const CpuidRegs l7 = cpuid(7, 0);
  const bool avx2 = (l7.ebx >> 5) & 1, bmi1 = (l7.ebx >> 3) & 1, bmi2 = (l7.ebx >> 8) & 1;
  f.avx2 = f.v2 && os_ymm && avx && avx2 && fma && f16c && bmi1 && bmi2;
  const bool avx512f = (l7.ebx >> 16) & 1, avx512dq = (l7.ebx >> 17) & 1;
  const bool avx512cd = (l7.ebx >> 28) & 1, avx512bw = (l7.ebx >> 30) & 1;
  const bool avx512vl = (l7.ebx >> 31) & 1;
  f.avx512 = f.avx2 && os_zmm && avx512f && avx512dq && avx512cd && avx512bw && avx512vl;
  return f;
}

const Features& features() {
  static const Features f = detect();
  return f;
}
#endif

std::string available_list() {
  std::string s;
  for (Isa isa : available_isas()) {
    if (!s.empty()) s += ", ";
    s += isa_name(isa);
  }
  return s.empty() ? std::string("none") : s;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512:
      return "avx512";
    case Isa::avx2:
      return "avx2";
    case Isa::scalar:
      return "scalar";
    default:
      return "baseline";
  }
}

bool cpu_supports_baseline() {
#if defined(NNFAST_X86)
  return features().v2;
#else
  return true;
#endif
}

std::vector<Isa> available_isas() {
  std::vector<Isa> out;
  if (!cpu_supports_baseline()) return out;
#if defined(NNFAST_X86)
  out.push_back(Isa::scalar);  // needs nothing, but is no use where the wheel cannot load
#endif
  out.push_back(Isa::baseline);
#if defined(NNFAST_X86)
  if (features().avx2) out.push_back(Isa::avx2);
  if (features().avx512) out.push_back(Isa::avx512);
#endif
  return out;
}

Isa active_isa() { return static_cast<Isa>(g_active.load(std::memory_order_relaxed)); }

void select_isa(const std::string& name) {
  const std::vector<Isa> avail = available_isas();
  if (avail.empty()) {
    throw std::runtime_error(
        "nnfast: this CPU lacks the baseline instruction set (x86-64-v2: SSE4.2, POPCNT), which "
        "this build requires");
  }
  if (name.empty()) {
    g_active.store(static_cast<int>(avail.back()), std::memory_order_relaxed);
    return;
  }
  Isa wanted;
  if (name == "scalar") {
#if defined(NNFAST_X86)
    wanted = Isa::scalar;
#else
    wanted = Isa::baseline;  // the baseline is the scalar path here
#endif
  } else if (name == "baseline") {
    wanted = Isa::baseline;
  } else if (name == "avx2") {
    wanted = Isa::avx2;
  } else if (name == "avx512") {
    wanted = Isa::avx512;
  } else {
    throw std::invalid_argument("nnfast: unknown ISA '" + name +
                                "'; expected one of scalar, baseline, avx2, avx512 (this CPU supports: " +
                                available_list() + ")");
  }
  for (Isa isa : avail) {
    if (isa == wanted) {
      g_active.store(static_cast<int>(wanted), std::memory_order_relaxed);
      return;
    }
  }
  throw std::runtime_error("nnfast: ISA '" + name +
                           "' is not supported by this CPU or build; supported: " +
                           available_list());
}

}  // namespace runtime
}  // namespace nnfast
