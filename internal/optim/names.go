package optim

// Input and output names shared by the optimizer graphs. Per-parameter
// values are named by a prefix and the parameter's name; every updated value
// comes back under UpdatedName of its input, so a caller swaps buffers by
// name.
const (
	LearningRate = "learning_rate" // DOUBLE scalar: the lr of this step (HF logs it before the scheduler steps)
	Step         = "step"          // INT64 scalar: torch's state["step"] after its increment (1 on the first update)
	Beta1        = "beta1"         // DOUBLE scalar
	Beta2        = "beta2"         // DOUBLE scalar
	Epsilon      = "eps"           // DOUBLE scalar
	WeightDecay  = "weight_decay"  // DOUBLE scalar, applied to decay parameters only
	MaxGradNorm  = "max_grad_norm" // FLOAT scalar; 0 disables clipping as in HF
	Momentum     = "momentum"      // DOUBLE scalar (SGD)
	GradNorm     = "grad_norm"     // FLOAT scalar output: total L2 norm of the gradients before clipping
)

// GradName is the optimizer input holding the (accumulated) gradient of p.
func GradName(p string) string { return "grad." + p }

// ExpAvgName is AdamW's first moment of p (torch state key exp_avg).
func ExpAvgName(p string) string { return "exp_avg." + p }

// ExpAvgSqName is AdamW's second moment of p (torch state key exp_avg_sq).
func ExpAvgSqName(p string) string { return "exp_avg_sq." + p }

// ExpAvgSqRowName and ExpAvgSqColName are Adafactor's factored second
// moment of p (torch state keys exp_avg_sq_row, exp_avg_sq_col).
func ExpAvgSqRowName(p string) string { return "exp_avg_sq_row." + p }

// ExpAvgSqColName: see ExpAvgSqRowName.
func ExpAvgSqColName(p string) string { return "exp_avg_sq_col." + p }

// MomentumBufferName is SGD's momentum buffer of p (torch state key momentum_buffer).
func MomentumBufferName(p string) string { return "momentum_buffer." + p }

// UpdatedName is the output that carries the new value of input name.
func UpdatedName(name string) string { return "new." + name }
