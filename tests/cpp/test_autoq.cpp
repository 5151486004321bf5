// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
// Tests of the autoq search engine (filled in by its issue).
