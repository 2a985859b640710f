package main

import "github.com/ortrain/ortrain/generate/predict"

// predictReport is the report type predict_test.go reads back.
type predictReport = predict.Report
