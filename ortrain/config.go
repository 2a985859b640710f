package ortrain

import (
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/modelfile"
)

// ArgumentNames lists every TrainingArguments key (the json tag names).
func ArgumentNames() []string {
	t := reflect.TypeOf(TrainingArguments{})
	names := make([]string, 0, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		names = append(names, jsonName(t.Field(i)))
	}
	return names
}

func jsonName(f reflect.StructField) string {
	n, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return n
}

// ArgumentIsBool reports whether the named argument is a boolean (a flag
// without a value), optional ones (tf32, None by default) included.
func ArgumentIsBool(name string) bool {
	var a TrainingArguments
	f, ok := a.field(name)
	return ok && (f.Kind() == reflect.Bool || f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Bool)
}

// NormalizeName maps "eval-steps" and "--eval_steps" to "eval_steps".
func NormalizeName(name string) string {
	return strings.ReplaceAll(strings.TrimLeft(name, "-"), "-", "_")
}

func (a *TrainingArguments) field(name string) (reflect.Value, bool) {
	name = NormalizeName(name)
	v := reflect.ValueOf(a).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if jsonName(t.Field(i)) == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// Set assigns one argument from a flag string or a decoded JSON/YAML value
// (string, bool, int, float64, []any, map[string]any, nil). "none"/"null"
// (or nil) clear an optional argument.
func (a *TrainingArguments) Set(name string, value any) error {
	f, ok := a.field(name)
	if !ok {
		return fault.Settingsf("unknown argument %q (known: %s)", name, strings.Join(ArgumentNames(), ", "))
	}
	if err := setValue(f, value); err != nil {
		return fault.Settingsf("argument %s: %w", NormalizeName(name), err)
	}
	return nil
}

func setValue(f reflect.Value, value any) error {
	if s, ok := value.(string); ok && f.Kind() == reflect.Pointer && (s == "none" || s == "None" || s == "null" || s == "") {
		value = nil
	}
	if value == nil {
		f.Set(reflect.Zero(f.Type()))
		return nil
	}
	switch f.Kind() {
	case reflect.Pointer:
		p := reflect.New(f.Type().Elem())
		if err := setValue(p.Elem(), value); err != nil {
			return err
		}
		f.Set(p)
		return nil
	case reflect.String:
		switch x := value.(type) {
		case string:
			f.SetString(x)
		case bool:
			f.SetString(strconv.FormatBool(x))
		default:
			return fmt.Errorf("want a string, got %v", value)
		}
	case reflect.Bool:
		switch x := value.(type) {
		case bool:
			f.SetBool(x)
		case string:
			b, err := strconv.ParseBool(strings.ToLower(x))
			if err != nil {
				return fmt.Errorf("want true or false, got %q", x)
			}
			f.SetBool(b)
		default:
			return fmt.Errorf("want true or false, got %v", value)
		}
	case reflect.Int:
		n, err := toFloat(value)
		if err != nil {
			return err
		}
		if n != math.Trunc(n) || math.Abs(n) > 1<<53 {
			return fmt.Errorf("want an integer, got %v", value)
		}
		f.SetInt(int64(n))
	case reflect.Float64:
		n, err := toFloat(value)
		if err != nil {
			return err
		}
		f.SetFloat(n)
	case reflect.Slice: // []string
		var items []string
		switch x := value.(type) {
		case string:
			for _, p := range strings.Split(x, ",") {
				if p = strings.TrimSpace(p); p != "" {
					items = append(items, p)
				}
			}
		case []any:
			for _, e := range x {
				s, ok := e.(string)
				if !ok {
					return fmt.Errorf("want a list of strings, got %v", value)
				}
				items = append(items, s)
			}
		default:
			return fmt.Errorf("want a list of strings, got %v", value)
		}
		f.Set(reflect.ValueOf(items))
	case reflect.Map: // map[string]float64
		m := map[string]float64{}
		switch x := value.(type) {
		case map[string]any:
			for k, e := range x {
				n, err := toFloat(e)
				if err != nil {
					return fmt.Errorf("key %s: %w", k, err)
				}
				m[k] = n
			}
		case string: // k=v,k=v or a JSON object
			if strings.HasPrefix(strings.TrimSpace(x), "{") {
				var raw map[string]any
				if err := yaml.Unmarshal([]byte(x), &raw); err != nil {
					return fmt.Errorf("want a JSON object: %v", err)
				}
				return setValue(f, raw)
			}
			for _, p := range strings.Split(x, ",") {
				k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
				if !ok {
					return fmt.Errorf("want key=value pairs, got %q", p)
				}
				n, err := strconv.ParseFloat(v, 64)
				if err != nil {
					return fmt.Errorf("key %s: want a number, got %q", k, v)
				}
				m[k] = n
			}
		default:
			return fmt.Errorf("want an object of numbers, got %v", value)
		}
		f.Set(reflect.ValueOf(m))
	default:
		return fmt.Errorf("unsupported field kind %s", f.Kind())
	}
	return nil
}

func toFloat(v any) (float64, error) {
	switch x := v.(type) {
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	case float64:
		return x, nil
	case string:
		n, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, fmt.Errorf("want a number, got %q", x)
		}
		return n, nil
	}
	return 0, fmt.Errorf("want a number, got %v", v)
}

// LoadConfigFile applies a JSON or YAML file of arguments (same keys as the
// flags) to a. Errors name the file, the line and the key.
//
// A file that does not exist is a bad setting (ErrSettings); one that
// cannot be read or holds bad content is bad input (ErrInput).
func (a *TrainingArguments) LoadConfigFile(path string) error {
	data, err := modelfile.ReadFile(path, 16<<20)
	if errors.Is(err, os.ErrNotExist) {
		return fault.Mark(fault.Settings, err)
	}
	if err != nil {
		return fault.Mark(fault.Input, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fault.Inputf("%s: not valid JSON or YAML: %v", path, err)
	}
	if len(doc.Content) == 0 {
		return nil // empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fault.Inputf("%s:%d: want an object of argument names to values", path, root.Line)
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if line, dup := seen[k.Value]; dup {
			return fault.Inputf("%s:%d: %s is given twice (first at line %d); keep one", path, k.Line, k.Value, line)
		}
		seen[k.Value] = k.Line
		if k.Value == LoRASection {
			continue // read by ConfigSection
		}
		var val any
		if err := v.Decode(&val); err != nil {
			return fault.Inputf("%s:%d: %s: %v", path, v.Line, k.Value, err)
		}
		if err := a.Set(k.Value, val); err != nil {
			// a bad value in the file is the file's fault: bad input
			return fault.Inputf("%s:%d: %v", path, k.Line, err)
		}
	}
	return nil
}

// ToMap returns the arguments as a JSON-ready map under HF names
// (training_args.json).
func (a *TrainingArguments) ToMap() map[string]any {
	out := map[string]any{}
	v := reflect.ValueOf(a).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		out[jsonName(t.Field(i))] = plain(v.Field(i))
	}
	return out
}

func plain(f reflect.Value) any {
	switch f.Kind() {
	case reflect.Pointer:
		if f.IsNil() {
			return nil
		}
		return plain(f.Elem())
	case reflect.Int:
		return int(f.Int())
	case reflect.Float64:
		return f.Float()
	case reflect.Bool:
		return f.Bool()
	case reflect.String:
		return f.String()
	case reflect.Slice:
		s := []any{}
		for i := 0; i < f.Len(); i++ {
			s = append(s, f.Index(i).String())
		}
		return s
	case reflect.Map:
		if f.IsNil() {
			return nil
		}
		m := map[string]any{}
		keys := f.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			m[k.String()] = f.MapIndex(k).Float()
		}
		return m
	}
	return nil
}

// ArgumentsFromMap rebuilds arguments from ToMap's output (training_args.json).
func ArgumentsFromMap(m map[string]any) (TrainingArguments, error) {
	a := DefaultArguments()
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := a.Set(k, m[k]); err != nil {
			return a, err
		}
	}
	return a, nil
}

// LoRASection is the key of a config file whose value holds LoRA settings
// (PEFT's LoraConfig names), not TrainingArguments.
const LoRASection = "lora"

// ConfigSection returns the object under key in a JSON or YAML config
// file (nil when the file has no such key), with the line it starts on.
func ConfigSection(path, key string) (map[string]any, int, error) {
	data, err := modelfile.ReadFile(path, 16<<20)
	if err != nil {
		return nil, 0, fault.Mark(fault.Input, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, 0, nil // LoadConfigFile reports what is wrong with the file
	}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != key {
			continue
		}
		v := root.Content[i+1]
		if v.Kind != yaml.MappingNode {
			return nil, v.Line, fault.Inputf("%s:%d: %s: want an object of settings (r, lora_alpha, target_modules, ...)", path, v.Line, key)
		}
		var m map[string]any
		if err := v.Decode(&m); err != nil {
			return nil, v.Line, fault.Inputf("%s:%d: %s: %v", path, v.Line, key, err)
		}
		return m, v.Line, nil
	}
	return nil, 0, nil
}
