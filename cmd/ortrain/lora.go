package main

import (
	"maps"
	"slices"

	"github.com/urfave/cli/v2"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/lora"
	"github.com/ortrain/ortrain/ortrain"
)

// loraFlagList is the LoRA settings' flags (train and artifacts);
// training adds --merge_lora.
func loraFlagList(training bool) []cli.Flag {
	flags := []cli.Flag{
		&cli.IntFlag{Name: "lora_r", Aliases: []string{"lora-r"}, Usage: "train LoRA adapters of rank `R` instead of the model's weights (PEFT's LoraConfig r; 8 when another --lora_* flag or a lora: section in --config asks for LoRA)", DefaultText: "8", Category: "LoRA (PEFT)"},
		&cli.Float64Flag{Name: "lora_alpha", Aliases: []string{"lora-alpha"}, Usage: "LoRA alpha: the adapters' output is scaled by alpha/r", DefaultText: "8, PEFT's", Category: "LoRA (PEFT)"},
		&cli.Float64Flag{Name: "lora_dropout", Aliases: []string{"lora-dropout"}, Usage: "dropout on the adapters' input in training", DefaultText: "0", Category: "LoRA (PEFT)"},
		&cli.StringFlag{Name: "lora_target_modules", Aliases: []string{"lora-target-modules"}, Usage: "modules to adapt, as PEFT names them: comma-separated name suffixes (q,v for T5; q_proj,v_proj for BART and Marian; add k,o,wi,wo / k_proj,out_proj,fc1,fc2), all-linear, or re:REGEX over the whole module name", Category: "LoRA (PEFT)"},
		&cli.StringFlag{Name: "lora_bias", Aliases: []string{"lora-bias"}, Usage: "none, all (every bias trains) or lora_only (the adapted layers' biases); PEFT's bias", Category: "LoRA (PEFT)"},
		&cli.StringFlag{Name: "modules_to_save", Aliases: []string{"modules-to-save"}, Usage: "comma-separated module-name suffixes whose parameters train in full and are saved in the adapter (PEFT's modules_to_save)", Category: "LoRA (PEFT)"},
		&cli.StringFlag{Name: "adapter", Usage: "PEFT adapter folder (adapter_config.json, adapter_model.safetensors) to continue training: its config and weights start the adapters", Category: "LoRA (PEFT)"},
	}
	if training {
		flags = append(flags,
			&cli.BoolFlag{Name: "merge_lora", Aliases: []string{"merge-lora"}, Usage: "also write the model with the adapters merged into its weights (model.safetensors, config.json: a full checkpoint) into output_dir at the end; its ONNX graphs then hold the merged weights, without adapter branches (ortrain predict --model OUTPUT_DIR)", Category: "LoRA (PEFT)"},
		)
	}
	return flags
}

// loraFlags are the LoRA settings' flags, by the LoraConfig key they set.
var loraFlags = map[string]string{"lora_r": "r", "lora_alpha": "lora_alpha", "lora_dropout": "lora_dropout",
	"lora_target_modules": "target_modules", "lora_bias": "bias", "modules_to_save": "modules_to_save"}

// loraConfig assembles the LoRA settings: PEFT's defaults, the lora:
// section of --config, then the flags; nil when neither asks for LoRA.
func loraConfig(c *cli.Context) (*lora.Config, error) {
	cfg := lora.Defaults()
	on := false
	if p := c.String("config"); p != "" {
		sec, line, err := ortrain.ConfigSection(p, ortrain.LoRASection)
		if err != nil {
			return nil, err
		}
		for _, k := range slices.Sorted(maps.Keys(sec)) {
			if err := cfg.Set(k, sec[k]); err != nil {
				return nil, fault.Inputf("%s:%d: lora: %v", p, line, err)
			}
		}
		on = sec != nil
	}
	for _, flag := range slices.Sorted(maps.Keys(loraFlags)) {
		if !c.IsSet(flag) {
			continue
		}
		on = true
		if err := cfg.Set(loraFlags[flag], c.Value(flag)); err != nil {
			return nil, fault.Settingsf("--%s: %v", flag, err)
		}
	}
	if !on {
		return nil, nil
	}
	if c.String("adapter") == "" {
		if err := cfg.Validate("LoRA settings"); err != nil {
			return nil, err
		}
	}
	return &cfg, nil
}
