package train

import "math"

// WarmupSteps is the number of warmup steps for a fraction of the run, rounded
// up as Hugging Face Trainer does (ceil(total·frac)).
func WarmupSteps(total int, warmupFrac float64) int {
	if warmupFrac <= 0 || total <= 0 {
		return 0
	}
	return int(math.Ceil(float64(total) * warmupFrac))
}

// LinearWarmupDecay is Hugging Face get_linear_schedule_with_warmup: the rate
// for optimizer step `step` (0-based) of `total`, rising linearly from 0 to
// peak over the first WarmupSteps(total, warmupFrac) steps, then falling
// linearly to 0 at step total:
//
//	step < w: peak·step/w        else: peak·max(0, (total−step)/(total−w))
//
// As in HF, the very first step (step 0) has rate 0 when there is warmup.
// Mosbach et al. 2021 use warmupFrac 0.1.
func LinearWarmupDecay(step, total int, warmupFrac, peak float64) float64 {
	w := WarmupSteps(total, warmupFrac)
	if step < w {
		return peak * float64(step) / float64(max(1, w))
	}
	return peak * max(0, float64(total-step)/float64(max(1, total-w)))
}
