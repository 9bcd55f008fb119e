//! A vector that keeps its first element inline.
//!
//! Almost every prefix has one route (one neighbour advertising it on a
//! point-to-point tunnel) and one source; a `Vec` would allocate room for
//! four of each. At 10,000+ routes on a router with little RAM, that waste
//! dominated the table's memory.

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Slots<T> {
    #[default]
    Empty,
    One(T),
    Many(Vec<T>),
}

impl<T> Slots<T> {
    pub fn as_slice(&self) -> &[T] {
        match self {
            Slots::Empty => &[],
            Slots::One(t) => std::slice::from_ref(t),
            Slots::Many(v) => v,
        }
    }

    pub fn as_mut_slice(&mut self) -> &mut [T] {
        match self {
            Slots::Empty => &mut [],
            Slots::One(t) => std::slice::from_mut(t),
            Slots::Many(v) => v,
        }
    }

    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.as_slice().iter()
    }

    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, T> {
        self.as_mut_slice().iter_mut()
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn push(&mut self, t: T) {
        *self = match std::mem::take(self) {
            Slots::Empty => Slots::One(t),
            Slots::One(a) => Slots::Many(vec![a, t]),
            Slots::Many(mut v) => {
                v.reserve_exact(1);
                v.push(t);
                Slots::Many(v)
            }
        };
    }

    /// Keeps the elements for which `f` returns true (and may modify them).
    pub fn retain_mut(&mut self, mut f: impl FnMut(&mut T) -> bool) {
        *self = match std::mem::take(self) {
            Slots::Empty => Slots::Empty,
            Slots::One(mut a) => {
                if f(&mut a) {
                    Slots::One(a)
                } else {
                    Slots::Empty
                }
            }
            Slots::Many(mut v) => {
                v.retain_mut(f);
                Slots::from_vec(v)
            }
        };
    }

    /// Removes and returns the first element matching `f` (order is not kept).
    pub fn take_first(&mut self, f: impl Fn(&T) -> bool) -> Option<T> {
        let i = self.iter().position(f)?;
        match std::mem::take(self) {
            Slots::Empty => None,
            Slots::One(a) => Some(a),
            Slots::Many(mut v) => {
                let t = v.swap_remove(i);
                *self = Slots::from_vec(v);
                Some(t)
            }
        }
    }

    pub fn clear(&mut self) {
        *self = Slots::Empty;
    }

    fn from_vec(mut v: Vec<T>) -> Slots<T> {
        match v.len() {
            0 => Slots::Empty,
            1 => Slots::One(v.pop().expect("one")),
            _ => {
                v.shrink_to_fit();
                Slots::Many(v)
            }
        }
    }

    /// Heap bytes held (the inline element is not counted).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Slots::Many(v) => v.capacity() * std::mem::size_of::<T>(),
            _ => 0,
        }
    }
}

impl<'a, T> IntoIterator for &'a Slots<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_shrinks_and_removes() {
        let mut s = Slots::default();
        assert!(s.is_empty());
        s.push(1);
        assert!(matches!(s, Slots::One(1)));
        s.push(2);
        s.push(3);
        assert_eq!(s.as_slice(), &[1, 2, 3]);
        assert_eq!(s.take_first(|x| *x == 1), Some(1));
        assert_eq!(s.len(), 2);
        s.retain_mut(|x| {
            *x *= 10;
            *x > 20
        });
        assert!(matches!(s, Slots::One(30)));
        assert_eq!(s.take_first(|x| *x == 7), None);
        assert_eq!(s.take_first(|x| *x == 30), Some(30));
        assert!(s.is_empty());
    }
}
