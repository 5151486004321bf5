// Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
// Tests of qtools-equivalent data types, energy and size (filled in by its issue).
