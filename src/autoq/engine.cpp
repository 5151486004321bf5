// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
// The AutoQ search engine (filled in by its issue).
